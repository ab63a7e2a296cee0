/* main.c — dsc's entry point: help, version, and which command runs. */
#include <stdio.h>
#include <string.h>

#include "backend/emit_c.h"  /* DSC_VERSION */
#include "cli/cli.h"

typedef int command_fn(const cli *c);

static const struct {
    const char *name;
    command_fn *run;
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

static command_fn *command_named(const char *name)
{
    for (size_t k = 0; k < sizeof commands / sizeof commands[0]; k++)
        if (strcmp(name, commands[k].name) == 0)
            return commands[k].run;
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        cli_help(stderr, NULL);
        return 1;
    }
    const char *name = argv[1];
    if (!strcmp(name, "--help") || !strcmp(name, "-h") ||
        !strcmp(name, "help")) {
        /* help [COMMAND]: one command's section; help help, all of it. */
        const char *topic = !strcmp(name, "help") && argc > 2 &&
                            strcmp(argv[2], "help") ? argv[2] : NULL;
        if (!strcmp(name, "help") && argc > 3)
            return cli_usage_error("help takes one command, got '%s' too",
                                   argv[3]);
        if (cli_help(stdout, topic) < 0)
            return cli_usage_error("no help for '%s': not a command", topic);
        return 0;
    }
    if (strcmp(name, "--version") == 0) {
        printf("dsc %s\n", DSC_VERSION);
        return 0;
    }
    command_fn *run = command_named(name);
    if (!run)
        return cli_usage_error("unknown command '%s'", name);
    for (int i = 2; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            cli_help(stdout, name);
            return 0;
        }
    cli c;
    if (cli_parse_args(argc, argv, &c))
        return 1;
    int rc = run(&c);
    cli_free(&c);
    return rc;
}
