/* logical_line.h: the "logical lines" of a text file, as Postfix's
 * readlline() makes them, for main.cf-style tables (postmap's text
 * format, aliases(5)).
 *
 * Lines are read with getline() and lose their newline. Empty lines,
 * lines of white space and lines whose first non-blank is '#' are
 * skipped. A line that starts with white space continues the logical
 * line before it (one that starts a file or follows a comment is warned
 * about and dropped). Text after a NUL byte is ignored, with a warning.
 * A logical line longer than max bytes is an error. With squeeze, a
 * continuation's leading white space becomes one space (aliases(5)); else
 * it is kept as it is. */
#ifndef PETREL_LOGICAL_LINE_H
#define PETREL_LOGICAL_LINE_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

#include "util/str.h"

struct logical_line_reader {
	/* set by logical_line_init() */
	FILE *fp;
	const char *path; /* for messages */
	size_t max;	  /* bytes of a logical line */
	bool squeeze;
	/* after logical_line_next() returned 1 */
	struct str logical;	 /* the line */
	unsigned int first_line; /* its first physical line's number */
	/* private */
	char *line; /* getline() buffer */
	size_t cap;
	ssize_t len;
	bool pending; /* line holds an unconsumed physical line */
	unsigned int lineno;
};

void logical_line_init(struct logical_line_reader *r, FILE *fp, const char *path, size_t max,
		       bool squeeze);
/* logical_line_next: the next logical line into r->logical. 1, 0 at the
 * end of input, -1 with *error_r on a read error or too long a line. */
int logical_line_next(struct logical_line_reader *r, const char **error_r);
void logical_line_deinit(struct logical_line_reader *r);

#endif
