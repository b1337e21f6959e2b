/* queue_id.c: queue IDs; see queue.h.
 *
 * Format, uppercase hex, no separators (Postfix's short IDs are hex too, so
 * log parsers such as pflogsumm take these):
 *
 *   queue-id = seconds usec inode
 *   seconds  = 8HEXDIG      ; Unix time of creation, mod 2^32 (to 2106)
 *   usec     = 5HEXDIG      ; microseconds, 00000..F423F
 *   inode    = 1*16HEXDIG   ; the queue file's inode, no leading zeros
 *
 * The fixed-width time prefix makes string order time order. The inode is
 * unique among the files that exist on the queue's file system, and a
 * queue file keeps it through every rename between queue directories, so
 * two live messages never share an ID; the time keeps an ID from being
 * reused when an inode is. */
#include <config.h> /* autoconf; "config.h" here would be mail/config.h */

#include <stdio.h>
#include <string.h>

#include "mail/queue.h"

#define QUEUE_ID_TIME_LEN 13

/* queue_id_format: build the ID from creation time and inode. */
void queue_id_format(char id[QUEUE_ID_MAX], const struct timeval *tv, unsigned long long ino)
{
	unsigned long sec = (unsigned long)((unsigned long long)tv->tv_sec & 0xffffffffULL);
	snprintf(id, QUEUE_ID_MAX, "%08lX%05lX%llX", sec, (unsigned long)tv->tv_usec % 1000000UL,
		 ino);
}

/* queue_id_hex: value of an uppercase hex digit, or -1. */
static int queue_id_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* queue_id_valid: the shape of an ID: length and uppercase hex digits,
 * microseconds in range. */
bool queue_id_valid(const char *name)
{
	size_t len = strnlen(name, QUEUE_ID_MAX);
	if (len < QUEUE_ID_MIN_LEN || len > QUEUE_ID_MAX_LEN)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (queue_id_hex(name[i]) < 0)
			return false;
	}
	struct timeval tv;
	return queue_id_time(name, &tv);
}

/* queue_id_time: decode the creation time from the first 13 digits. */
bool queue_id_time(const char *id, struct timeval *tv_r)
{
	unsigned long long sec = 0;
	unsigned long usec = 0;
	for (size_t i = 0; i < QUEUE_ID_TIME_LEN; i++) {
		int v = queue_id_hex(id[i]);
		if (v < 0)
			return false;
		if (i < 8)
			sec = sec * 16 + (unsigned)v;
		else
			usec = usec * 16 + (unsigned)v;
	}
	if (usec >= 1000000)
		return false;
	tv_r->tv_sec = (time_t)sec;
	tv_r->tv_usec = (suseconds_t)usec;
	return true;
}
