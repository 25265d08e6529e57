/* What boot-config.c (the entry sets, symlink mode) and boot-exchange.c
 * (exchange mode's swap and its non-atomic fallback) share. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define LOADER "loader"
#define ENTRIES "entries"
#define EXCHANGE_NEW_NAME "entries.new"
#define EXCHANGE_NEW LOADER "/" EXCHANGE_NEW_NAME
/* Where the non-atomic fallback keeps the entries it moved out of
 * loader/entries until the switch is complete (boot-exchange.c). */
#define EXCHANGE_OLD_NAME "entries.old"
#define EXCHANGE_OLD LOADER "/" EXCHANGE_OLD_NAME

/* What boot loaders read as an entry in an entries directory. */
gboolean boot_is_entry_name (const char *name);

/* The entry file names (*.conf, not hidden) in @dfd. */
gboolean boot_list_entry_names (int dfd, const char *what, GPtrArray **ret_names, GError **error);

/* After the commit point an fsync failure is a warning: the switch happened. */
void boot_fsync_after_commit (int dfd, const char *what);

/* Exchange mode's swap of loader/entries with the complete
 * loader/entries.new (see boot-exchange.c). Returns FALSE with the live
 * configuration as it was; *ret_how says how the switch was made. */
gboolean boot_swap_exchange (int boot_dfd, char **ret_how, GError **error);

G_END_DECLS
