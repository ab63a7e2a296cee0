/* cmd_embed.c — dsc embed: sentence embeddings (placeholder). */
#include "cli/cli.h"
int cmd_embed(const cli *c) { (void)c; return 1; }
