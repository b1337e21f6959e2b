/* config_private.h: helpers shared by config.c and config_edit.c; not
 * for use outside the config module. */
#ifndef PETREL_CONFIG_PRIVATE_H
#define PETREL_CONFIG_PRIVATE_H

#include <stdbool.h>

#include "util/attr.h"
#include "util/str.h"

#define CONFIG_FILE_NAME "main.cf"

/* config_err: format an error message into the module's static buffer
 * (what error_r points to) and return it. */
const char *config_err(const char *fmt, ...) ATTR_FORMAT(1, 2);
/* config_name_ok: printable ASCII without white space or '='. */
bool config_name_ok(const char *name);
/* config_read_file: append the whole file to buf; at most CONFIG_FILE_MAX
 * bytes and no NUL byte. */
bool config_read_file(const char *path, struct str *buf, const char **error_r);

#endif
