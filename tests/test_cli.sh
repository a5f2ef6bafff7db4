#!/usr/bin/env bash
# test_cli.sh — the command line's error contract: bad input gives exactly
# one line on stderr and a non-zero exit (never a crash), and the happy
# paths print what docs/cli.md says.
set -u
PSI=${PSI:?run through ctest}
DATA=${PSI_TEST_DATA:?}
TMP=${PSI_TMP:-/tmp}/cli
mkdir -p "$TMP"
M="$DATA/models/stories260K.gguf"
pass=0
fail=0

ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }

# expect_error DESCRIPTION PATTERN -- ARGS...: non-zero exit (< 128), one stderr line matching PATTERN
expect_error() {
    local desc=$1 pat=$2
    shift 3
    "$PSI" "$@" >"$TMP/out" 2>"$TMP/err" </dev/null
    local st=$?
    local lines
    lines=$(wc -l <"$TMP/err")
    if [ "$st" -eq 0 ] || [ "$st" -ge 126 ]; then
        bad "$desc: exit status $st"
    elif [ "$lines" -ne 1 ]; then
        bad "$desc: $lines lines on stderr: $(head -c 300 "$TMP/err")"
    elif ! grep -q -- "$pat" "$TMP/err"; then
        bad "$desc: stderr '$(cat "$TMP/err")' lacks '$pat'"
    else
        ok
    fi
}

"$PSI" >/dev/null 2>"$TMP/err"; st=$?
[ "$st" -eq 2 ] && grep -q "^usage" "$TMP/err" && ok || bad "no command: exit $st"
expect_error "unknown command" "unknown command" -- frobnicate
expect_error "run without model" "no model" -- run -p hi
expect_error "unknown option" "unknown option '--bogus'" -- run -m "$M" --bogus
expect_error "missing value" "needs a value" -- run -m "$M" -n
expect_error "bad -n" "not an integer" -- run -m "$M" -n ten
expect_error "negative -n" "out of range" -- run -m "$M" -n -5
expect_error "bad temp" "not a number" -- run -m "$M" --temp hot
expect_error "top-p > 1" "out of range" -- run -m "$M" --top-p 1.5
expect_error "bad kv type" "kv-type" -- run -m "$M" --kv-type q4
expect_error "q8_0 kv unsupported" "not supported" -- run -m "$M" --kv-type q8_0 -n 1
expect_error "missing file" "No such file" -- run -m "$TMP/nope.gguf" -p hi
expect_error "directory as model" "not a regular file" -- run -m "$TMP" -p hi
expect_error "text file as model" "bad magic" -- run -m "$DATA/models/stories260K-reference.txt"
expect_error "two prompts" "only one of" -- run -m "$M" -p a --tokens "1 2"
expect_error "bad token list" "not a valid token id" -- run -m "$M" --tokens "1 x 3"
expect_error "negative token" "not a valid token id" -- run -m "$M" --tokens "1 -4"
expect_error "token out of vocab" "out of range" -- run -m "$M" --tokens "1 99999"
expect_error "empty token list" "no token ids" -- run -m "$M" --tokens " "
expect_error "prompt longer than context" "more than the context" -- run -m "$M" --tokens "1 2 3 4 5 6" -c 4
expect_error "prompt file missing" "No such file" -- run -m "$M" -f "$TMP/none.txt"
expect_error "logits without -o" "-o OUT.f32" -- logits -m "$M" --tokens "1 2"
expect_error "logits unwritable" "cannot create" -- logits -m "$M" --tokens "1 2" -o /nonexistent/dir/x.f32
expect_error "inspect no file" "no file" -- inspect
expect_error "inspect two files" "more than one" -- inspect "$M" "$M"
expect_error "convert bad from" "not supported" -- convert --from hf a b -o x
expect_error "convert missing args" "need MODEL.bin" -- convert --from llama2c a -o x
expect_error "convert missing model" "cannot open" -- convert --from llama2c "$TMP/none.bin" "$DATA/models/tok512.bin" -o "$TMP/x.gguf"
expect_error "convert wrong tokenizer" "implausible\|implies" -- convert --from llama2c "$DATA/models/tok512.bin" "$DATA/models/tok512.bin" -o "$TMP/x.gguf"
# a type psi cannot compute: blk.0.attn_k.weight of the Q4_K_M file relabelled
# Q2_K (ggml type 10; its data is smaller, so the file stays well-formed)
Q=$DATA/reference/llama2-tiny-Q4_K_M.gguf
name_at=$(grep -obUa "blk.0.attn_k.weight" "$Q" | head -n 1 | cut -d: -f1)
cp "$Q" "$TMP/q2k.gguf" && chmod u+w "$TMP/q2k.gguf"
printf '\012' | dd of="$TMP/q2k.gguf" bs=1 seek=$((name_at + 19 + 4 + 16)) conv=notrunc 2>/dev/null
expect_error "unsupported type refused" "Q2_K" -- run -m "$TMP/q2k.gguf" --tokens "1 2" -n 1
expect_error "quantize unsupported type" "not supported" -- quantize "$M" "$TMP/q.gguf" q2_k

# truncated llama2.c checkpoint: size check names both numbers
head -c 100000 "$DATA/models/stories260K.bin" >"$TMP/trunc.bin"
expect_error "truncated llama2c" "implies" -- convert --from llama2c "$TMP/trunc.bin" "$DATA/models/tok512.bin" -o "$TMP/x.gguf"
[ ! -e "$TMP/x.gguf" ] && ok || bad "failed convert left an output file"

expect_error "detokenize without ids" "no token ids" -- detokenize -m "$M"
expect_error "detokenize bad id" "out of range" -- detokenize -m "$M" 1 600

# happy paths
out=$("$PSI" detokenize -m "$M" 1 403 407 261 378 2>/dev/null)
[ "$out" = "Once upon a time" ] && ok || bad "detokenize printed '$out'"
out=$("$PSI" detokenize -m "$M" "1 403, 407" 2>/dev/null)
[ "$out" = "Once upon" ] && ok || bad "detokenize of one list printed '$out'"
out=$("$PSI" tokenize -m "$M" --pieces "a time" 2>/dev/null | tail -1)
[ "$out" = "$(printf '378\t time')" ] && ok || bad "tokenize --pieces printed '$out'"
out=$("$PSI" tokenize -m "$M" "Once upon a time" 2>/dev/null)
[ "$out" = "1 403 407 261 378" ] && ok || bad "tokenize printed '$out'"
out=$("$PSI" tokenize -m "$DATA/reference/llama3-tiny-Q8_0.gguf" "Hello world" 2>/dev/null)
[ "$out" = "128000 9906 1917" ] && ok || bad "llama3 tokenize printed '$out'"
out=$("$PSI" run -m "$M" -p "Once upon a time" -n 5 --temp 0 2>/dev/null)
[ "$out" = ", there was a little" ] && ok || bad "run printed '$out'"
a=$("$PSI" run -m "$M" -p "The" -n 20 --temp 1 --seed 7 2>/dev/null)
b=$("$PSI" run -m "$M" -p "The" -n 20 --temp 1 --seed 7 2>/dev/null)
c=$("$PSI" run -m "$M" -p "The" -n 20 --temp 1 --seed 8 2>/dev/null)
[ -n "$a" ] && [ "$a" = "$b" ] && ok || bad "same seed gave different text: '$a' vs '$b'"
[ "$a" != "$c" ] && ok || bad "different seeds gave the same text"
"$PSI" inspect "$M" >"$TMP/inspect" 2>&1 && ok || bad "inspect failed"
grep -q "tokenizer.ggml.tokens = \[string × 512\]" "$TMP/inspect" && ok || bad "inspect: token array line"
grep -q "more\]" "$TMP/inspect" && ok || bad "inspect: long arrays not abbreviated"
grep -qE "blk.4.ffn_up.weight +F32 +\[64 x 172\]" "$TMP/inspect" && ok || bad "inspect: tensor table"
# quantize: stories260K's rows (64, 172) are no multiple of 256, so q4_k_m
# takes llama.cpp's fallbacks: Q5_0 for Q4_K, Q8_0 for Q6_K (attn_v of layer
# 2 of 5) and for the output matrix, F16 where 32 does not divide the row
"$PSI" quantize "$M" "$TMP/q4km.gguf" q4_k_m >"$TMP/out" 2>"$TMP/err" && ok || bad "quantize q4_k_m: $(cat "$TMP/err")"
grep -q "100%" "$TMP/err" && ok || bad "quantize: no progress lines: $(cat "$TMP/err")"
"$PSI" inspect "$TMP/q4km.gguf" >"$TMP/inspect" 2>&1
grep -qE "blk.0.attn_q.weight +Q5_0" "$TMP/inspect" && ok || bad "quantize: attn_q not Q5_0"
grep -qE "blk.2.attn_v.weight +Q8_0" "$TMP/inspect" && ok || bad "quantize: blk.2.attn_v not Q8_0"
grep -qE "blk.1.attn_v.weight +Q5_0" "$TMP/inspect" && ok || bad "quantize: blk.1.attn_v not Q5_0"
grep -qE "blk.0.ffn_down.weight +F16" "$TMP/inspect" && ok || bad "quantize: ffn_down not F16"
grep -qE "token_embd.weight +Q5_0" "$TMP/inspect" && ok || bad "quantize: token_embd not Q5_0"
grep -qE "^  output.weight +Q8_0" "$TMP/inspect" && ok || bad "quantize: output not Q8_0"
grep -qE "general.file_type \(u32\) = 15" "$TMP/inspect" && ok || bad "quantize: file type"
out=$("$PSI" run -m "$TMP/q4km.gguf" -p "Once upon a time" -n 5 --temp 0 2>/dev/null)
[ -n "$out" ] && ok || bad "run on the q4_k_m file printed nothing"
"$PSI" run --help | grep -q -- "--kv-type" && ok || bad "run --help"
"$PSI" --version | grep -q "^psi " && ok || bad "--version"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
