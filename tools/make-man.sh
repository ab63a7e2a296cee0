#!/bin/sh
# The dsc(1) man page from `dsc --help`, so the two never disagree.
# usage: tools/make-man.sh path/to/dsc VERSION > dsc.1
set -eu
dsc=$1
version=$2
cat <<HEAD
.TH DSC 1 "" "dsc $version" "User Commands"
.SH NAME
dsc \- compile Transformer models described in Lua into straight-line C
.SH SYNOPSIS
.B dsc
.I command
.RI [ options ]
.I MODEL.lua
.SH DESCRIPTION
HEAD
echo ".nf"
# roff: a leading dot or quote starts a request, a backslash escapes.
"$dsc" --help | sed -e 's/\\/\\e/g' -e "s/^\([.']\)/\\\\\&\1/"
echo ".fi"
cat <<TAIL
.SH FILES
The runtime header and the API header are installed under
.IR include/dsc/ ;
pkg-config's
.B dscrt
and
.B dsc
give the flags to build against them.
.SH SEE ALSO
docs/design.md and docs/api.md in dsc's source tree.
TAIL
