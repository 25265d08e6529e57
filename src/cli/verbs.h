/* One verb per file; each parses its options and calls the core. */
#pragma once

int verb_init (int argc, char **argv);
int verb_stage (int argc, char **argv);
int verb_unstage (int argc, char **argv);
int verb_status (int argc, char **argv);
int verb_finalize_staged (int argc, char **argv);
int verb_deploy (int argc, char **argv);
int verb_rollback (int argc, char **argv);
int verb_cleanup (int argc, char **argv);
int verb_config_diff (int argc, char **argv);
