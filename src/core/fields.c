/* mbpo field tables (include/mbpo/fields.h): the defaults of a table written into a struct. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "mbpo/fields.h"

/* writes the number v into the field f of obj (element i of a list) */
static void setnum(void *obj, const mbField *f, int i, double v) {
  char *p = (char *)obj + f->offset;
  switch (f->type) {
    case MB_FIELD_INT: case MB_FIELD_BOOL: case MB_FIELD_ENUM: *(int *)p = (int)v; break;
    case MB_FIELD_I64: *(int64_t *)p = (int64_t)v; break;
    case MB_FIELD_U64: *(uint64_t *)p = (uint64_t)(int64_t)v; break;
    case MB_FIELD_FLOAT: ((float *)p)[i] = (float)v; break;
    case MB_FIELD_DOUBLE: *(double *)p = v; break;
    case MB_FIELD_INTS: ((int *)p)[i] = (int)v; break;
    case MB_FIELD_FLOATS: ((float *)p)[i] = (float)v; break;
  }
}

void mbu_fieldDefaults(void *obj, const mbField *fields) {
  for (const mbField *f = fields; f->name[0]; f++) {
    if (f->type == MB_FIELD_INTS || f->type == MB_FIELD_FLOATS) {
      for (int i = 0; i < f->ndefs && i < f->n; i++) setnum(obj, f, i, f->defs[i]);
      if (!(f->flags & MB_F_LINKED)) *(int *)((char *)obj + f->count) = f->ndefs;
    } else if (!isnan(f->def) && !(f->flags & MB_F_REQUIRED)) {
      for (int i = 0; i < f->n; i++) setnum(obj, f, i, f->def);
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
