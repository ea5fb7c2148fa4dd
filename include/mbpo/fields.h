/* mbpo field tables: one home for every setting of a configurable core struct (MuJoCo's
   mjxmacro, lfs's members[]). A struct's settings are listed once, in its header, as a macro
   of rows MB_F_INT(S, name, default, lo, hi, doc) ...; the row's name is the struct field
   (offsetof checks it at compile time), the option key of the Lua constructor and the key
   of the run config. From the one list come
     - the C defaults (mbu_fieldDefaults, called by the struct's defaults function),
     - the binding's option reader (src/lua/l_fields.c: types, ranges, unknown keys),
     - the Lua defaults and the help text (the table exported as e.g. mbpo.sac.fields),
     - the README's settings table (mbpo help config --markdown).
   A header instantiates its list once, in the .c file beside the defaults function:
     const mbField mbr_sacFields[] = {MB_SAC_FIELDS(mbSacConfig) MB_F_END};
   Ranges are closed [lo, hi]; MB_F_OPEN_LO / MB_F_OPEN_HI in flags make a bound strict. */
#ifndef MBPO_FIELDS_H
#define MBPO_FIELDS_H

#include <math.h>
#include <stddef.h>

typedef enum mbFieldType {
  MB_FIELD_INT,      /* int */
  MB_FIELD_I64,      /* int64_t */
  MB_FIELD_U64,      /* uint64_t (seeds: any integer, negative ones wrap) */
  MB_FIELD_FLOAT,    /* float (n consecutive floats when n > 1: one value sets them all) */
  MB_FIELD_DOUBLE,   /* double */
  MB_FIELD_BOOL,     /* int, 0 or 1 */
  MB_FIELD_ENUM,     /* an enum (int-sized), named by `names` in value order: "relu|swish" */
  MB_FIELD_INTS,     /* int[maxn], its length in the int field at `count` */
  MB_FIELD_FLOATS    /* float[maxn], its length in the int field at `count` */
} mbFieldType;

/* flags */
#define MB_F_REQUIRED 1   /* no default: the constructor needs it */
#define MB_F_OPEN_LO  2   /* lo itself is out of range */
#define MB_F_OPEN_HI  4   /* hi itself is out of range */
#define MB_F_LINKED   8   /* a list whose length is that of the list at count, plus one
                             (weight decay: one per linear layer) */
#define MB_F_EMPTY   16   /* a list that may be empty */

typedef struct mbField {
  const char *name;      /* struct field = option key = config key ("" ends a table) */
  mbFieldType type;
  int flags;
  size_t offset;         /* of the field in its struct */
  size_t count;          /* lists: offset of the int holding the length */
  int n;                 /* scalars: consecutive fields set (1); lists: most values */
  double def;            /* scalar default (an enum: its index); NaN: none of its own */
  const double *defs;    /* list default */
  int ndefs;
  double lo, hi;         /* range of the value (of each element of a list) */
  const char *names;     /* MB_FIELD_ENUM: the names, '|'-separated, in value order */
  const char *doc;       /* one line */
} mbField;

/* Rows. S is the struct; `lo`, `hi` bound the value (lists: each element). */
#define MB_F_ROW(S, nm, T, fl, d, l, h, nms, dc) {.name = #nm, .type = T, .flags = (fl), \
  .offset = offsetof(S, nm), .n = 1, .def = (d), .lo = (l), .hi = (h), .names = (nms), \
  .doc = (dc)},
#define MB_F_INT(S, nm, d, l, h, dc) MB_F_ROW(S, nm, MB_FIELD_INT, 0, d, l, h, NULL, dc)
#define MB_F_I64(S, nm, d, l, h, dc) MB_F_ROW(S, nm, MB_FIELD_I64, 0, d, l, h, NULL, dc)
#define MB_F_U64(S, nm, d, dc) MB_F_ROW(S, nm, MB_FIELD_U64, 0, d, -HUGE_VAL, HUGE_VAL, NULL, dc)
#define MB_F_FLOAT(S, nm, fl, d, l, h, dc) MB_F_ROW(S, nm, MB_FIELD_FLOAT, fl, d, l, h, NULL, dc)
#define MB_F_DOUBLE(S, nm, fl, d, l, h, dc) MB_F_ROW(S, nm, MB_FIELD_DOUBLE, fl, d, l, h, NULL, dc)
#define MB_F_BOOL(S, nm, d, dc) MB_F_ROW(S, nm, MB_FIELD_BOOL, 0, d, 0, 1, NULL, dc)
#define MB_F_ENUM(S, nm, d, nms, dc) MB_F_ROW(S, nm, MB_FIELD_ENUM, 0, d, 0, 0, nms, dc)
/* a required integer (no default) */
#define MB_F_NEED(S, nm, l, h, dc) MB_F_ROW(S, nm, MB_FIELD_INT, MB_F_REQUIRED, 0, l, h, NULL, dc)
#define MB_F_NEED64(S, nm, l, h, dc) \
  MB_F_ROW(S, nm, MB_FIELD_I64, MB_F_REQUIRED, 0, l, h, NULL, dc)
/* a shorthand key: one value sets nf consecutive float fields, the first named first */
#define MB_F_FLOATN(S, key, first, nf, d, l, h, dc) {.name = #key, .type = MB_FIELD_FLOAT, \
  .flags = MB_F_OPEN_LO, .offset = offsetof(S, first), .n = (nf), .def = (d), .lo = (l), \
  .hi = (h), .doc = (dc)},
/* lists: the length in the int field cnt, at most mx values, the default after the doc */
#define MB_F_LIST(S, nm, T, fl, cnt, mx, l, h, dc, ...) {.name = #nm, .type = T, .flags = (fl), \
  .offset = offsetof(S, nm), .count = offsetof(S, cnt), .n = (mx), \
  .defs = (const double[]){__VA_ARGS__}, \
  .ndefs = (int)(sizeof((const double[]){__VA_ARGS__}) / sizeof(double)), \
  .lo = (l), .hi = (h), .doc = (dc)},
#define MB_F_INTS(S, nm, cnt, mx, l, h, dc, ...) \
  MB_F_LIST(S, nm, MB_FIELD_INTS, 0, cnt, mx, l, h, dc, __VA_ARGS__)
#define MB_F_FLOATS(S, nm, fl, cnt, mx, l, h, dc, ...) \
  MB_F_LIST(S, nm, MB_FIELD_FLOATS, fl, cnt, mx, l, h, dc, __VA_ARGS__)
#define MB_F_END {.name = ""}

/* Sets every field of obj that has a default in the table (NaN defaults are skipped). */
void mbu_fieldDefaults(void *obj, const mbField *fields);

/* The row named `name`, or NULL. */
const mbField *mbu_fieldFind(const mbField *fields, const char *name);

/* The enum name of value v of an MB_FIELD_ENUM row into buf ("" when out of range). */
const char *mbu_fieldEnumName(const mbField *f, int v, char *buf, size_t size);
/* The value of the enum name `name` of an MB_FIELD_ENUM row, or -1. */
int mbu_fieldEnumValue(const mbField *f, const char *name);
/* Writes the number v into field f of obj: element i of a list, else the scalar (all n
   consecutive floats of an MB_FIELD_FLOAT row). */
void mbu_fieldSet(void *obj, const mbField *f, int i, double v);
/* 1 for the integer types (INT, I64, U64, INTS). */
int mbu_fieldIsInt(const mbField *f);
/* 1 when v is in f's range: finite, within [lo, hi], the open bounds excluded (that an
   integer field's value is integral is the caller's check). */
int mbu_fieldInRange(const mbField *f, double v);
/* The (up to) three names of fields and extra (NULL-terminated, or NULL) nearest to key by
   edit distance, nearest first, the earlier row winning ties; unused slots are NULL. */
void mbu_fieldNearest(const char *near[3], const char *key, const mbField *fields,
                      const char *const *extra);

/* What a value of row f must be, into buf: "an integer in [1, 64]", "a number > 0",
   "one of fp32, bf16", "true or false". */
const char *mbu_fieldRange(const mbField *f, char *buf, size_t size);

/* MB_OK when every setting of obj is a value of its row (numbers finite and in range, bools
   0 or 1, enums named, list lengths in range; U64 rows take anything; a shorthand row that
   sets several fields is checked through those fields' own rows), else MB_ERR with the
   message of the bindings' reader (mbu_error): "WHO: gamma must be a number in [0, 1],
   got 1.5", "WHO: hidden[2] must be an integer in [1, 65536], got 0". */
int mbu_fieldCheck(const void *obj, const mbField *fields, const char *who);

#endif
