/* attr.h: compiler attributes used across the tree. */
#ifndef PETREL_ATTR_H
#define PETREL_ATTR_H

#define ATTR_FORMAT(fmt, args) __attribute__((format(printf, fmt, args)))
#define ATTR_NORETURN __attribute__((noreturn))
#define ATTR_UNUSED __attribute__((unused))
#define ATTR_WARN_UNUSED __attribute__((warn_unused_result))
#define N_ELEMENTS(a) (sizeof(a) / sizeof((a)[0]))

#endif
