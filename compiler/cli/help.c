/* help.c — dsc's help text: the commands, the options every command takes,
 * then one section per command.  `dsc --help` prints it all (and is the
 * man page, tools/make-man.sh); `dsc help CMD` and `dsc CMD --help` print
 * the first two parts and CMD's section, with the sections it points to. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static const char help_head[] =
"usage: dsc <command> [options]\n"
"\n"
"dsc compiles a Transformer described in Lua into straight-line C.\n"
"\n"
"commands:\n"
"  compile MODEL.lua   write NAME.c and NAME.h (and a weight blob)\n"
"  run MODEL.lua       compile, load (libtcc JIT, or --aot) and run once\n"
"  generate MODEL.lua  continue a prompt with a decoder (models/gpt2.lua)\n"
"  train MODEL.lua     train with the model's loss and Adam, as the seed\n"
"  bench MODEL.lua     time the forward; one JSON line of figures\n"
"  graph MODEL.lua     draw the op graph for Graphviz (dot -Tsvg)\n"
"  tokenize            print the WordPiece ids of each line of a text file\n"
"  embed MODEL.lua     sentence embeddings of each line (models/minilm.lua)\n"
"  help [COMMAND]      show the help of one command (or all of it)\n"
"  --version           print the version\n"
"\n";

static const char help_common[] =
"options for all:\n"
"  -D KEY=VALUE        override a config default of the model (repeatable)\n"
"  --config FILE.json  set the model's config keys from a Hugging Face\n"
"                      config.json (nested objects as KEY.SUB; keys the\n"
"                      model does not declare ignored; -D still overrides)\n"
"  -fno-fuse-qkv       keep linears that read one tensor apart\n"
"  -fno-fuse-epilogue  keep activations and residual adds as their own ops\n"
"  -fno-dce            keep nodes no output needs\n"
"  -fno-plan-memory    give every tensor its own arena region\n"
"  -v                  print each pass and what it changed\n"
"  --target T          native (default), avx2, avx512 or generic: the packed\n"
"                      weight layout (and, for run and bench, the kernels;\n"
"                      native honours $DSC_ISA)\n"
"  -fweights=FORMAT    f32 (default), bf16 or q8: how the linear layers'\n"
"                      packed weights are stored (bf16: a float's top half,\n"
"                      rounded to nearest even; q8: int8 in blocks of 32\n"
"                      inputs with one scale each, as llama.cpp's Q8_0);\n"
"                      embeddings, norms and biases stay f32.  compile, run,\n"
"                      generate, bench, embed; not train\n"
"  --max-memory BYTES  refuse a model whose arena, weights and cache need\n"
"                      more (suffix K, M, G or T; default half the RAM)\n"
"\n";

/* A command's section, and the sections of the commands it refers to
 * ("as for run"), which its own help prints after it; model: it takes the
 * options for all (it compiles a model). */
typedef struct help_section {
    const char *command;
    const char *text;
    const char *see[2];
    int model;
} help_section;

static const help_section sections[] = {
    { "compile",
"compile options:\n"
"  -o FILE.c           the C file to write (default NAME.c); NAME.h goes\n"
"                      beside it\n"
"  --weights W         also write the packed weight blob FILE.bin from the\n"
"                      safetensors file W\n"
"  --random-weights    write FILE.bin with random weights (see --seed)\n"
"  --seed N            seed for --random-weights (default 0)\n"
"  --stats-json FILE   write what the passes did and made as JSON\n"
"  --train             also write NAME_train_step (the model's loss, Adam)\n"
"\n", { NULL, NULL }, 1 },
    { "run",
"run options:\n"
"  --weights W         weights from a safetensors file (default: random)\n"
"  --seed N            seed for random weights and inputs (default 0)\n"
"  --input NAME=F.npy  an input from a .npy file (default: random)\n"
"  --output NAME=F.npy write an output to a .npy file\n"
"  --argmax            print the most likely token per row of each output\n"
"  --aot               build with the system C compiler ($CC, default cc)\n"
"                      into a shared object instead of the JIT\n"
"  --threads N         threads for the kernels (default: $DSC_NUM_THREADS,\n"
"                      else one per core)\n"
"  --compare-f32       with -fweights=bf16 or q8: run the same inputs through\n"
"                      a float32 build too and print, per output, the max\n"
"                      |diff| and the rows whose argmax agrees (stderr)\n"
"\n", { NULL, NULL }, 1 },
    { "generate",
"generate options:\n"
"  --prompt IDS        the prompt's token ids: 464,2068,318\n"
"  -n N                tokens to generate (default 32)\n"
"  --prompt-logits F.npy  write the float32 [n_prompt, vocab] logits of\n"
"                      every prompt position\n"
"  --temperature T     sample at temperature T (default 0: greedy argmax)\n"
"  --top-k K           sample among the K most likely tokens only\n"
"  --top-p P           sample among the smallest set with mass P\n"
"  --weights, --seed, --threads, --aot as for run; ids go to stdout,\n"
"  prefill and decode speed to stderr\n"
"\n", { "run", NULL }, 1 },
    { "train",
"train options:\n"
"  --epochs N          steps over the input batch (default 10)\n"
"  --lr LR             Adam's learning rate (default 0.001)\n"
"  --weight-decay WD   Adam's L2 penalty, as torch.optim.Adam's (default 0)\n"
"  --save OUT          write the trained weights (safetensors; every key of\n"
"                      --weights, untrained ones as they were)\n"
"  --losses L.npy      write each epoch's loss (float32 [N])\n"
"  --save-grads G      write the last step's gradients (safetensors)\n"
"  --weights, --input, --seed (random weights, dropout masks), --threads,\n"
"  --aot as for run; -D dropout=0 turns dropout off\n"
"\n", { "run", NULL }, 1 },
    { "bench",
"bench options:\n"
"  --train             time one training step (forward, backward, Adam)\n"
"  --runs N            timed runs after a warm-up (default 20; 10 with\n"
"                      --train)\n"
"  -n N                a decoder: one-token steps after an 8-token prompt\n"
"                      (default 64); reports tokens/s and the bandwidth bound\n"
"  -fweights=bf16|q8   also reports the blob size and, after the timed runs,\n"
"                      max |diff| and argmax agreement against float32\n"
"  --weights, --seed, --threads, --aot as for run\n"
"\n", { "run", NULL }, 1 },
    { "graph",
"graph options:\n"
"  -o FILE.dot         write there instead of to standard output\n"
"  --after-passes      draw the graph the passes leave\n"
"\n", { NULL, NULL }, 1 },
    { "tokenize",
"tokenize options:\n"
"  --tokenizer FILE    a BERT tokenizer.json (or vocab.txt)\n"
"  --text FILE         UTF-8, one sentence per line; prints one line of\n"
"                      comma-separated ids per sentence\n"
"  --max-length N      truncate to N ids, [CLS] and [SEP] included\n"
"\n", { NULL, NULL }, 0 },
    { "embed",
"embed options:\n"
"  --tokenizer FILE, --text FILE as for tokenize; --weights W, --threads,\n"
"  --aot as for run\n"
"  --output E.npy      float32 [sentences, hidden]; without it, print the\n"
"                      first values of each embedding\n"
"  --batch B           most sentences per forward (default 256); they are\n"
"                      packed without padding, ~1024 tokens per forward\n"
"  --max-length N      truncate to N ids (default 256)\n"
"  --config FILE       a BERT's transformers config.json: its sizes become\n"
"                      -D vocab_size=... (explicit -D still win)\n"
"\n", { "tokenize", "run" }, 1 },
};

enum { N_SECTIONS = sizeof sections / sizeof sections[0] };

static const help_section *section_of(const char *command)
{
    for (int i = 0; i < N_SECTIONS; i++)
        if (strcmp(sections[i].command, command) == 0)
            return &sections[i];
    return NULL;
}

int cli_help(FILE *out, const char *command)
{
    const help_section *s = command ? section_of(command) : NULL;
    if (command && !s)
        return -1;
    fputs(help_head, out);
    if (!s || s->model)
        fputs(help_common, out);
    if (!s) {
        for (int i = 0; i < N_SECTIONS; i++)
            fputs(sections[i].text, out);
        return 0;
    }
    fputs(s->text, out);
    for (int i = 0; i < 2 && s->see[i]; i++)
        fputs(section_of(s->see[i])->text, out);
    return 0;
}
