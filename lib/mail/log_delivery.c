/* log_delivery.c: Postfix's delivery log line (see log_delivery.h). */
#include <config.h>

#include <string.h>
#include <strings.h>

#include "mail/log_delivery.h"
#include "util/msg.h"

#define LOG_DELIVERY_ADDR_MAX 1024
#define LOG_DELIVERY_TEXT_MAX 2048
#define LOG_DELIVERY_SIG_DIGITS 2 /* significant digits */
#define LOG_DELIVERY_MAX_DECIMALS 2
#define MILLION 1000000L

struct log_delivery_delta {
	long sec;
	long usec;
};

/* log_delivery_delta: later - earlier, never negative (clock jumps). */
static struct log_delivery_delta log_delivery_delta(const struct timeval *later,
						    const struct timeval *earlier)
{
	struct log_delivery_delta d;
	d.sec = (long)(later->tv_sec - earlier->tv_sec);
	d.usec = (long)(later->tv_usec - earlier->tv_usec);
	while (d.usec < 0) {
		d.usec += MILLION;
		d.sec--;
	}
	while (d.usec >= MILLION) {
		d.usec -= MILLION;
		d.sec++;
	}
	if (d.sec < 0)
		d.sec = d.usec = 0;
	return d;
}

/* log_delivery_format_tv: sig. digits, capped decimals, no trailing zeros. */
void log_delivery_format_tv(struct str *out, long sec, long usec)
{
	long width = 100; /* 10^LOG_DELIVERY_SIG_DIGITS */
	long res = MILLION / 100; /* 10^-LOG_DELIVERY_MAX_DECIMALS s, in usec */
	if (sec < 0 || usec < 0 || usec >= MILLION)
		sec = usec = 0;
	/* a coarser resolution hides digits beyond the significant ones */
	if (sec > 0) {
		long n = 1;
		while (sec >= n && n <= width / 10)
			n *= 10;
		res = (MILLION / width) * n;
	} else {
		while (usec >= width * res)
			res *= 10;
	}
	/* round half up at the resolution */
	if (res > 1) {
		usec += res / 2;
		if (usec >= MILLION) {
			sec++;
			usec -= MILLION;
		}
	}
	str_printf(out, "%ld", sec);
	if (usec >= res) {
		str_append_c(out, '.');
		long rem = usec;
		for (long n = MILLION / 10; rem >= res && n > 0; n /= 10) {
			str_append_c(out, (char)('0' + rem / n));
			rem %= n;
		}
	}
}

/* log_delivery_put_delta: a separator then one formatted delta. */
static void log_delivery_put_delta(struct str *out, const char *sep, struct log_delivery_delta d)
{
	str_append(out, sep);
	log_delivery_format_tv(out, d.sec, d.usec);
}

/* log_delivery_stamped: a time stamp that was taken. */
static bool log_delivery_stamped(const struct timeval *tv)
{
	return tv->tv_sec > 0;
}

/* log_delivery_put_delays: delay= and delays=a/b/c/d as log_adhoc does. */
static void log_delivery_put_delays(struct str *out, const struct log_delivery_times *t)
{
	struct timeval now;
	struct log_delivery_delta zero = {0, 0}, a, b = zero, c = zero, d = zero;
	if (log_delivery_stamped(&t->done))
		now = t->done;
	else
		(void)gettimeofday(&now, NULL);
	if (log_delivery_stamped(&t->active)) {
		a = log_delivery_delta(&t->active, &t->arrival);
		if (log_delivery_stamped(&t->handoff)) {
			b = log_delivery_delta(&t->handoff, &t->active);
			if (log_delivery_stamped(&t->conn_done)) {
				c = log_delivery_delta(&t->conn_done, &t->handoff);
				d = log_delivery_delta(&now, &t->conn_done);
			} else {
				d = log_delivery_delta(&now, &t->handoff);
			}
		} else {
			b = log_delivery_delta(&now, &t->active);
		}
	} else {
		a = log_delivery_delta(&now, &t->arrival);
	}
	log_delivery_put_delta(out, ", delay=", log_delivery_delta(&now, &t->arrival));
	log_delivery_put_delta(out, ", delays=", a);
	log_delivery_put_delta(out, "/", b);
	log_delivery_put_delta(out, "/", c);
	log_delivery_put_delta(out, "/", d);
}

/* log_delivery_format: the whole line. */
void log_delivery_format(struct str *out, const char *queue_id, const char *to,
			 const char *orig_to, const char *relay,
			 const struct log_delivery_times *times, const char *dsn,
			 const char *status, const char *reason)
{
	str_printf(out, "%s: to=<", queue_id);
	str_escape_log(out, to, strlen(to), LOG_DELIVERY_ADDR_MAX);
	str_append_c(out, '>');
	if (orig_to != NULL && *orig_to != '\0' && strcasecmp(to, orig_to) != 0) {
		str_append(out, ", orig_to=<");
		str_escape_log(out, orig_to, strlen(orig_to), LOG_DELIVERY_ADDR_MAX);
		str_append_c(out, '>');
	}
	str_append(out, ", relay=");
	str_escape_log(out, relay, strlen(relay), LOG_DELIVERY_ADDR_MAX);
	log_delivery_put_delays(out, times);
	str_printf(out, ", dsn=%s, status=%s (", dsn, status);
	str_escape_log(out, reason, strlen(reason), LOG_DELIVERY_TEXT_MAX);
	str_append_c(out, ')');
}

/* log_delivery: format and log at info level. */
void log_delivery(const char *queue_id, const char *to, const char *orig_to, const char *relay,
		  const struct log_delivery_times *times, const char *dsn, const char *status,
		  const char *reason)
{
	struct str line;
	str_init(&line);
	log_delivery_format(&line, queue_id, to, orig_to, relay, times, dsn, status, reason);
	msg_info("%s", str_c(&line));
	str_deinit(&line);
}
