/* queue_rec.h: private to the queue module: record type letters and the
 * shared error buffer. The grammar is in queue.c, next to the writer. */
#ifndef PETREL_QUEUE_REC_H
#define PETREL_QUEUE_REC_H

#include "util/attr.h"

#define QUEUE_REC_VERSION 'V'
#define QUEUE_REC_ARRIVAL 'T'
#define QUEUE_REC_SENDER 'S'
#define QUEUE_REC_ATTR 'A'
#define QUEUE_REC_COUNT 'N'
#define QUEUE_REC_ORCPT 'O'
#define QUEUE_REC_RCPT 'R'
#define QUEUE_REC_CONTENT 'C'
#define QUEUE_REC_SIZE 'Z'
#define QUEUE_REC_END 'E'

/* The data of the first record; the number is the format version. */
#define QUEUE_FORMAT_MAGIC "petrel-queue 1"

/* A record header is the type letter, at most 10 length digits and ':'. */
#define QUEUE_REC_HEADER_MAX 12
#define QUEUE_REC_LENGTH_DIGITS 10

/* queue_error: format *error_r text into the module's static buffer and
 * return it. */
const char *queue_error(const char *fmt, ...) ATTR_FORMAT(1, 2);

#endif
