/* cfgargs: --config FILE.json for a server whose flags are a getopt_long
 * table. The file is one JSON object whose keys are the long flag names
 * ("listen", "upstream", ...): a string or number is the flag's value, true
 * gives a flag without one, an array repeats the flag. The result is an
 * argv with the file's flags first and the command line's after, so flags
 * given on the command line win. Unknown keys, a value for a flag without
 * one, and "config" itself are refused (operator input: fail closed). */
#ifndef AT_CFGARGS_H
#define AT_CFGARGS_H

#include <getopt.h>

#include "err.h"

/* When argv holds "--config F" (or "--config=F"), a new argv (*out_argc,
 * *out_argv; free with at_cfgargs_free) with F's flags inserted after
 * argv[0]; otherwise a copy of argv. */
at_err at_cfgargs_expand(int argc, char **argv, const struct option *opts, int *out_argc, char ***out_argv,
                         at_diag *d) AT_MUST_USE;
void at_cfgargs_free(int argc, char **argv);

#endif
