/* emit_deepseek.h — C for the DeepSeek-V3 ops (emit_c.c's switch hands
 * them here). */
#ifndef DSC_EMIT_DEEPSEEK_H
#define DSC_EMIT_DEEPSEEK_H

#include "ir/graph.h"
#include "util/strbuf.h"

/* One call for node n.  name: each tensor's C expression; rows: the
 * output's row count as a C expression ("n" in a decoder step). */
void emit_c_deepseek(strbuf *sb, const graph *g, const graph_node *n,
                     char *const *name, const char *rows);

#endif
