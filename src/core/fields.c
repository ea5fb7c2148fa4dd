/* mbpo field tables (include/mbpo/fields.h): the defaults of a table written into a struct,
   the range of a row as text, a struct checked against its table, and what the option reader
   of the bindings checks and says (values set, ranges, nearest names). */
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "mbpo/core.h"
#include "mbpo/fields.h"

void mbu_fieldSet(void *obj, const mbField *f, int i, double v) {
  char *p = (char *)obj + f->offset;
  switch (f->type) {
    case MB_FIELD_INT: case MB_FIELD_BOOL: case MB_FIELD_ENUM: *(int *)p = (int)v; break;
    case MB_FIELD_I64: *(int64_t *)p = (int64_t)v; break;
    case MB_FIELD_U64: *(uint64_t *)p = (uint64_t)(int64_t)v; break;
    case MB_FIELD_FLOAT: for (int k = 0; k < f->n; k++) ((float *)p)[k] = (float)v; break;
    case MB_FIELD_DOUBLE: *(double *)p = v; break;
    case MB_FIELD_INTS: ((int *)p)[i] = (int)v; break;
    case MB_FIELD_FLOATS: ((float *)p)[i] = (float)v; break;
  }
}

void mbu_fieldDefaults(void *obj, const mbField *fields) {
  for (const mbField *f = fields; f->name[0]; f++) {
    if (f->type == MB_FIELD_INTS || f->type == MB_FIELD_FLOATS) {
      for (int i = 0; i < f->ndefs && i < f->n; i++) mbu_fieldSet(obj, f, i, f->defs[i]);
      if (!(f->flags & MB_F_LINKED)) *(int *)((char *)obj + f->count) = f->ndefs;
    } else if (!isnan(f->def) && !(f->flags & MB_F_REQUIRED)) {
      mbu_fieldSet(obj, f, 0, f->def);
    }
  }
}

const mbField *mbu_fieldFind(const mbField *fields, const char *name) {
  for (const mbField *f = fields; f->name[0]; f++)
    if (strcmp(f->name, name) == 0) return f;
  return NULL;
}

const char *mbu_fieldEnumName(const mbField *f, int v, char *buf, size_t size) {
  const char *s = f->names ? f->names : "";
  for (int i = 0; i < v && s; i++) {
    s = strchr(s, '|');
    if (s) s++;
  }
  size_t len = s ? strcspn(s, "|") : 0;
  if (v < 0 || len >= size) len = 0;
  if (size) snprintf(buf, size, "%.*s", (int)len, s ? s : "");
  return buf;
}

int mbu_fieldEnumValue(const mbField *f, const char *name) {
  char buf[160];
  for (int i = 0; mbu_fieldEnumName(f, i, buf, sizeof buf)[0]; i++)
    if (strcmp(name, buf) == 0) return i;
  return -1;
}

int mbu_fieldIsInt(const mbField *f) {
  return f->type == MB_FIELD_INT || f->type == MB_FIELD_I64 || f->type == MB_FIELD_INTS ||
         f->type == MB_FIELD_U64;
}

int mbu_fieldInRange(const mbField *f, double v) {
  return isfinite(v) && v >= f->lo && v <= f->hi && !((f->flags & MB_F_OPEN_LO) && v == f->lo) &&
         !((f->flags & MB_F_OPEN_HI) && v == f->hi);
}

/* a bound as text: integers without a fraction, others as %g */
static int bound(char *b, size_t n, double v) {
  return snprintf(b, n, v == floor(v) && fabs(v) < 1e15 ? "%.0f" : "%g", v);
}

const char *mbu_fieldRange(const mbField *f, char *b, size_t n) {
  int isint = f->type == MB_FIELD_INT || f->type == MB_FIELD_I64 || f->type == MB_FIELD_INTS;
  const char *what = isint ? "an integer" : "a number";
  char lo[32], hi[32];
  bound(lo, sizeof lo, f->lo);
  bound(hi, sizeof hi, f->hi);
  int hashi = f->hi < (isint ? 2147483647.0 : HUGE_VAL), haslo = f->lo > -HUGE_VAL;
  if (f->type == MB_FIELD_BOOL) snprintf(b, n, "true or false");
  else if (f->type == MB_FIELD_ENUM) {   /* "one of a, b" from "a|b" */
    size_t k = (size_t)snprintf(b, n, "one of ");
    for (const char *c = f->names; *c && k + 3 < n; c++)
      if (*c == '|') { b[k++] = ','; b[k++] = ' '; } else b[k++] = *c;
    b[k] = 0;
  } else if (f->type == MB_FIELD_U64) snprintf(b, n, "an integer");
  else if (haslo && hashi)
    snprintf(b, n, "%s in %c%s, %s%c", what, f->flags & MB_F_OPEN_LO ? '(' : '[', lo, hi,
             f->flags & MB_F_OPEN_HI ? ')' : ']');
  else if (haslo) snprintf(b, n, "%s %s %s", what, f->flags & MB_F_OPEN_LO ? ">" : ">=", lo);
  else if (hashi) snprintf(b, n, "%s %s %s", what, f->flags & MB_F_OPEN_HI ? "<" : "<=", hi);
  else snprintf(b, n, isint ? "an integer" : "a finite number");
  return b;
}

/* element i of f's value in obj as a double */
static double getnum(const void *obj, const mbField *f, int i) {
  const char *p = (const char *)obj + f->offset;
  switch (f->type) {
    case MB_FIELD_INT: case MB_FIELD_BOOL: case MB_FIELD_ENUM: return *(const int *)p;
    case MB_FIELD_I64: return (double)*(const int64_t *)p;
    case MB_FIELD_U64: return 0;
    case MB_FIELD_FLOAT: case MB_FIELD_FLOATS: return ((const float *)p)[i];
    case MB_FIELD_DOUBLE: return *(const double *)p;
    case MB_FIELD_INTS: return ((const int *)p)[i];
  }
  return 0;
}

/* 1 when v is a value of f (a number in its range, a bool, an enum index) */
static int inrange(const mbField *f, double v) {
  if (f->type == MB_FIELD_BOOL) return v == 0 || v == 1;
  if (f->type == MB_FIELD_ENUM) {
    char name[64];
    return v >= 0 && v < 64 && mbu_fieldEnumName(f, (int)v, name, sizeof name)[0];
  }
  return mbu_fieldInRange(f, v);
}

int mbu_fieldCheck(const void *obj, const mbField *fields, const char *who) {
  for (const mbField *f = fields; f->name[0]; f++) {
    char what[160];
    int list = f->type == MB_FIELD_INTS || f->type == MB_FIELD_FLOATS;
    if (f->type == MB_FIELD_U64 || (!list && f->n > 1)) continue;
    int n = 1;
    if (list) {
      n = *(const int *)((const char *)obj + f->count);
      int lo = f->flags & MB_F_EMPTY ? 0 : 1;
      if (f->flags & MB_F_LINKED) n++;  /* one more than the list it follows: checked there */
      else if (n < lo || n > f->n)
        return mbu_error("%s: %s must be a list of %d to %d %s, got %d values", who, f->name,
                         lo, f->n, f->type == MB_FIELD_INTS ? "integers" : "numbers", n);
    }
    for (int i = 0; i < n; i++) {
      double v = getnum(obj, f, i);
      if (inrange(f, v)) continue;
      char key[80];
      if (list) snprintf(key, sizeof key, "%s[%d]", f->name, i + 1);
      else snprintf(key, sizeof key, "%s", f->name);
      /* the value as written: integers whole, floats to their 7 significant digits */
      int isint = f->type != MB_FIELD_FLOAT && f->type != MB_FIELD_FLOATS &&
                  f->type != MB_FIELD_DOUBLE;
      return mbu_error(isint ? "%s: %s must be %s, got %.0f" : f->type == MB_FIELD_DOUBLE ?
                       "%s: %s must be %s, got %.15g" : "%s: %s must be %s, got %.7g", who, key,
                       mbu_fieldRange(f, what, sizeof what), v);
    }
  }
  return MB_OK;
}

/* Levenshtein distance of two short names */
static int distance(const char *a, const char *b) {
  int la = (int)strlen(a), lb = (int)strlen(b), prev[64], cur[64];
  if (la > 63 || lb > 63) return 64;
  for (int j = 0; j <= lb; j++) prev[j] = j;
  for (int i = 1; i <= la; i++) {
    cur[0] = i;
    for (int j = 1; j <= lb; j++) {
      int c = prev[j - 1] + (a[i - 1] != b[j - 1]);
      cur[j] = prev[j] + 1 < cur[j - 1] + 1 ? prev[j] + 1 : cur[j - 1] + 1;
      if (c < cur[j]) cur[j] = c;
    }
    memcpy(prev, cur, sizeof(int) * (size_t)(lb + 1));
  }
  return prev[lb];
}

/* keeps name in near[] (the three nearest to k by distance d[], first wins ties) */
static void nearest(const char *k, const char *name, const char *near[3], int d[3]) {
  int x = distance(k, name), j = 3;
  while (j > 0 && x < d[j - 1]) j--;
  if (j == 3) return;
  for (int m = 2; m > j; m--) { d[m] = d[m - 1]; near[m] = near[m - 1]; }
  d[j] = x;
  near[j] = name;
}

void mbu_fieldNearest(const char *near[3], const char *key, const mbField *fields,
                      const char *const *extra) {
  int d[3] = {INT_MAX, INT_MAX, INT_MAX};
  near[0] = near[1] = near[2] = NULL;
  for (const mbField *f = fields; f->name[0]; f++) nearest(key, f->name, near, d);
  for (int i = 0; extra && extra[i]; i++) nearest(key, extra[i], near, d);
}
