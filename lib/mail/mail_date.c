/* mail_date.c: header dates; see mail_date.h. */
#include <config.h> /* autoconf; "config.h" here would be mail/config.h */

#include "mail/mail_date.h"

void mail_date(char *buf, size_t size, time_t when, bool zone_name)
{
	struct tm tm;
	localtime_r(&when, &tm);
	if (strftime(buf, size, zone_name ? "%a, %d %b %Y %H:%M:%S %z (%Z)"
					  : "%a, %d %b %Y %H:%M:%S %z", &tm) == 0 && size > 0)
		buf[0] = '\0';
}
