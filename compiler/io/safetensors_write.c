/* safetensors_write.c — write a safetensors file (dsc train --save), all
 * or nothing.  Keys are JSON-escaped; the header is padded with spaces to
 * a multiple of 8 bytes, as the Rust writer does. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/fileio.h"
#include "io/safetensors.h"
#include "util/strbuf.h"


static void json_string(strbuf *sb, const char *s)
{
    sb_append(sb, "\"");
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\')
            sb_printf(sb, "\\%c", *c);
        else if (*c < 0x20)
            sb_printf(sb, "\\u%04x", *c);
        else
            sb_printf(sb, "%c", *c);
    }
    sb_append(sb, "\"");
}


int st_write(const char *path, const st_out_tensor *t, int n, dsc_err *err)
{
    strbuf sb = {0};
    size_t at = 0;
    sb_append(&sb, "{");
    for (int i = 0; i < n; i++) {
        sb_append(&sb, i ? "," : "");
        json_string(&sb, t[i].name);
        sb_printf(&sb, ":{\"dtype\":\"%s\",\"shape\":[",
                  st_dtype_name(t[i].dtype));
        for (int d = 0; d < t[i].rank; d++)
            sb_printf(&sb, "%s%lld", d ? "," : "", (long long)t[i].shape[d]);
        sb_printf(&sb, "],\"data_offsets\":[%zu,%zu]}", at,
                  at + t[i].nbytes);
        at += t[i].nbytes;
    }
    sb_append(&sb, "}");
    while (!sb.failed && sb.len % 8)
        sb_append(&sb, " ");
    char *header = sb_take(&sb);
    if (!header)
        return err_set(err, "%s: error: out of memory", path);
    size_t len = strlen(header);
    unsigned char size[8];
    for (int b = 0; b < 8; b++)
        size[b] = (unsigned char)((uint64_t)len >> (8 * b));
    file_out *f = file_out_open(path, err);
    if (!f) {
        free(header);
        return -1;
    }
    int bad = file_out_write(f, size, 8) || file_out_write(f, header, len);
    for (int i = 0; i < n && !bad; i++)
        bad = t[i].nbytes && file_out_write(f, t[i].data, t[i].nbytes);
    free(header);
    return file_out_commit(f, err);
}
