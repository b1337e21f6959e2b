/* mail_date.h: the date in trace and message headers (Received:, Date:),
 * RFC 5322 in local time, as Postfix writes it:
 *
 *     Mon, 23 Nov 2026 01:09:27 +0000 (UTC)
 *
 * or without the zone's name in parentheses (as Dovecot's LMTP writes
 * its Received: header). Day and month names are the C locale's: no
 * daemon calls setlocale(). */
#ifndef PETREL_MAIL_DATE_H
#define PETREL_MAIL_DATE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define MAIL_DATE_MAX 64 /* bytes of buffer that always suffice */

/* mail_date: the date of when into buf (size bytes, MAIL_DATE_MAX is
 * enough); zone_name adds " (UTC)"-style comment. */
void mail_date(char *buf, size_t size, time_t when, bool zone_name);

#endif
