/* search_cli.h - `mscope-recorder search`: the search engine on the command line. */
#ifndef MSCOPE_SEARCH_CLI_H
#define MSCOPE_SEARCH_CLI_H

/* argv[0] is "search". Returns the process exit status. */
int search_cli_main(int argc, char **argv);

#endif
