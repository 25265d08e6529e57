/* What etc-tree.c and etc-merge.c share (etc-merge.h is the interface). */
#pragma once

#include "etc-merge.h"

G_BEGIN_DECLS

typedef struct
{
  char *name;
  char *value;
  gsize len;
} EtcXattr;

/* The extended attributes of @fd (or, when @fd < 0, of the symlink @name
 * below @dfd), sorted by name: a GArray of EtcXattr that frees them.
 * @what names the entry in errors. */
gboolean etc_read_xattrs (int fd, int dfd, const char *name, const char *what, GArray **ret,
                          GError **error);

/* The paths of @tree, sorted bytewise (a directory before what is below it);
 * the strings belong to the tree. */
GPtrArray *etc_tree_sorted_paths (const EtcTree *tree);

/* The entries of @tree: path -> EtcEntry*, in no order; the tree's. */
GHashTable *etc_tree_entries (const EtcTree *tree);

G_END_DECLS
