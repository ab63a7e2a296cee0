/* main.c — dsc's entry point: help, version, and which command runs. */
#include <stdio.h>
#include <string.h>

#include "backend/emit_c.h"  /* DSC_VERSION */
#include "cli/cli.h"

static const struct {
    const char *name;
    int (*run)(const cli *c);
} commands[] = {
    { "compile", cmd_compile },
    { "run", cmd_run },
    { "generate", cmd_generate },
    { "bench", cmd_bench },
    { "graph", cmd_graph },
    { "train", cmd_train },
    { "tokenize", cmd_tokenize },
    { "embed", cmd_embed },
};

static int known_command(const char *name)
{
    for (size_t k = 0; k < sizeof commands / sizeof commands[0]; k++)
        if (strcmp(name, commands[k].name) == 0)
            return 1;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        cli_help(stderr, NULL);
        return 1;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        (strcmp(argv[1], "help") == 0 && argc == 2)) {
        cli_help(stdout, NULL);
        return 0;
    }
    if (strcmp(argv[1], "help") == 0) {
        if (argc > 3)
            return cli_usage_error("help takes one command, got '%s' too",
                                   argv[3]);
        if (strcmp(argv[2], "help") == 0) {
            cli_help(stdout, NULL);
            return 0;
        }
        if (!known_command(argv[2]))
            return cli_usage_error("no help for '%s': not a command",
                                   argv[2]);
        cli_help(stdout, argv[2]);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("dsc %s\n", DSC_VERSION);
        return 0;
    }
    if (!known_command(argv[1]))
        return cli_usage_error("unknown command '%s'", argv[1]);
    for (int i = 2; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            cli_help(stdout, argv[1]);
            return 0;
        }
    for (size_t k = 0; k < sizeof commands / sizeof commands[0]; k++) {
        if (strcmp(argv[1], commands[k].name) != 0)
            continue;
        cli c;
        if (cli_parse_args(argc, argv, &c))
            return 1;
        int rc = commands[k].run(&c);
        cli_free(&c);
        return rc;
    }
    return 1;  /* not reached: known_command said it is one */
}
