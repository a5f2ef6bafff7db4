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
expect_error "q8_0 kv needs head size 32k" "multiple of 32" -- run -m "$M" --kv-type q8_0 -n 1
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
expect_error "pull no ref" "usage: psi pull" -- pull
expect_error "pull not a ref" "not hf:OWNER" -- pull model.gguf
expect_error "pull bad hf ref" "expected hf:OWNER/REPO" -- pull hf:nothing
expect_error "rm nothing" "usage: psi rm" -- rm
expect_error "list extra" "unexpected argument" -- list foo
expect_error "convert bad from" "not supported" -- convert --from onnx a b -o x
expect_error "convert hf two dirs" "need one checkpoint directory" -- convert --from hf a b -o x
expect_error "convert hf missing" "config.json: missing" -- convert --from hf /nonexistent -o x
expect_error "convert llama2c type" "--type is for --from hf" -- convert --from llama2c a b -o x --type q8_0
expect_error "convert missing args" "need MODEL.bin" -- convert --from llama2c a -o x
expect_error "convert missing model" "cannot open" -- convert --from llama2c "$TMP/none.bin" "$DATA/models/tok512.bin" -o "$TMP/x.gguf"
expect_error "convert wrong tokenizer" "implausible\|implies" -- convert --from llama2c "$DATA/models/tok512.bin" "$DATA/models/tok512.bin" -o "$TMP/x.gguf"
# a type psi cannot compute: blk.0.attn_k.weight of the Q4_K_M file relabelled
# Q2_K (ggml type 10; its data is smaller, so the file stays well-formed)
Q=$DATA/reference/llama2-tiny-Q4_K_M.gguf
name_at=$(grep -obUa "blk.0.attn_k.weight" "$Q" | head -n 1 | cut -d: -f1)
cp "$Q" "$TMP/q2k.gguf" && chmod u+w "$TMP/q2k.gguf"
printf '\012' | dd of="$TMP/q2k.gguf" bs=1 seek=$((name_at + 19 + 4 + 16)) conv=notrunc 2>/dev/null
expect_error "unsupported type refused" "Q2_K" -- run -m "$TMP/q2k.gguf" --tokens "1 2" -n 1 --accept-license
expect_error "quantize unsupported type" "not supported" -- quantize "$M" "$TMP/q.gguf" q2_k
# -f - reads the prompt from standard input
out=$(printf 'Once upon a time' | "$PSI" tokenize -m "$M" -f - 2>&1)
[ "$out" = "$("$PSI" tokenize -m "$M" "Once upon a time")" ] && ok || bad "tokenize -f - gave '$out'"
# output that cannot be written is an error, not a success with the output cut
if [ -c /dev/full ]; then
    "$PSI" tokenize -m "$M" "hello world" >/dev/full 2>"$TMP/err"; st=$?
    [ "$st" -eq 1 ] && grep -q "psi tokenize: cannot write the output: No space left on device" "$TMP/err" && ok ||
        bad "tokenize into a full disk: exit $st, $(cat "$TMP/err")"
    "$PSI" run -m "$M" -p "Once" -n 8 --temp 0 >/dev/full 2>"$TMP/err"; st=$?
    [ "$st" -eq 1 ] && grep -q "psi run: cannot write the output" "$TMP/err" && ok || bad "run into a full disk: exit $st"
fi
# nothing writes over its own input: quantize, convert and logits refuse it
cp "$M" "$TMP/self.gguf"
ln -sf "$TMP/self.gguf" "$TMP/self-link.gguf"
expect_error "quantize onto its input" "would replace the input" -- quantize "$TMP/self.gguf" "$TMP/self.gguf" q8_0
expect_error "quantize onto a link to its input" "would replace the input" -- quantize "$TMP/self.gguf" "$TMP/self-link.gguf" q8_0
expect_error "logits onto the model" "names an input file" -- logits -m "$TMP/self.gguf" --tokens "1 2" -o "$TMP/self-link.gguf"
echo "Once upon a time" >"$TMP/self-prompt.txt"
expect_error "logits onto the prompt file" "names an input file" -- logits -m "$M" -f "$TMP/self-prompt.txt" -o "$TMP/self-prompt.txt"
cmp -s "$M" "$TMP/self.gguf" && ok || bad "a refused command changed its input"
grep -q "^Once upon a time$" "$TMP/self-prompt.txt" && ok || bad "logits changed its prompt file"
# a pipe (or a device such as /dev/null) as OUT is written in place, not
# replaced by a renamed file (which, run as root, replaced /dev/null itself)
rm -f "$TMP/out.fifo"
mkfifo "$TMP/out.fifo"
timeout 60 cat "$TMP/out.fifo" >"$TMP/fifo.gguf" &
reader=$!
"$PSI" quantize "$M" "$TMP/out.fifo" f16 2>"$TMP/err" && ok || bad "quantize into a pipe: $(cat "$TMP/err")"
wait $reader
"$PSI" quantize "$M" "$TMP/regular.gguf" f16 2>/dev/null
cmp -s "$TMP/fifo.gguf" "$TMP/regular.gguf" && ok || bad "the pipe got other bytes than the file"
[ -p "$TMP/out.fifo" ] && ok || bad "the pipe was replaced"
expect_error "quantize onto a directory" "is a directory" -- quantize "$M" "$TMP" f16
expect_error "quantize into a missing folder" "/nonexistent/dir is not a directory" -- quantize "$M" /nonexistent/dir/x.gguf f16
# interrupted while writing OUT.tmp: the temporary file goes with the process
python3 "$(dirname "$0")/interrupt_write.py" "$PSI" "$DATA/reference/llama2-tiny-F32.gguf" "$TMP/intr.gguf" f16 && ok ||
    bad "an interrupted quantize left its temporary file"
# an already quantized file is quantized again only with --allow-requantize
Q40="$DATA/reference/llama2-tiny-Q4_0.gguf"
expect_error "requantize" "already quantized (Q6_K).*--allow-requantize" -- quantize "$Q40" "$TMP/q8.gguf" q8_0
"$PSI" quantize "$Q40" "$TMP/q8.gguf" q8_0 --allow-requantize 2>"$TMP/err" && grep -q "wrote $TMP/q8.gguf (q8_0, from" "$TMP/err" && ok ||
    bad "quantize --allow-requantize: $(cat "$TMP/err")"

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

# ---- special tokens, vocabulary-only files
L3="$DATA/reference/llama3-tiny-Q8_0.gguf"
out=$("$PSI" tokenize -m "$L3" --no-bos --parse-special "<|start_header_id|>user<|end_header_id|>" 2>/dev/null)
[ "$out" = "128006 882 128007" ] && ok || bad "tokenize --parse-special printed '$out'"
out=$("$PSI" tokenize -m "$L3" --no-bos "<|eot_id|>" 2>/dev/null)
[ "$out" != "128009" ] && [ -n "$out" ] && ok || bad "special token parsed without --parse-special: '$out'"
out=$("$PSI" tokenize -m "$DATA/vocab/ggml-vocab-llama-spm.gguf" "Hello world" 2>/dev/null)
[ "$out" = "1 15043 3186" ] && ok || bad "tokenize with a vocabulary-only file printed '$out'"
expect_error "run on a vocabulary-only file" "token_embd.weight" -- run -m "$DATA/vocab/ggml-vocab-llama-spm.gguf" -p hi
head -c 3000000 /dev/urandom | base64 -w 0 >"$TMP/big.txt"
"$PSI" tokenize -m "$L3" -f "$TMP/big.txt" >"$TMP/big.ids" 2>"$TMP/err" && [ "$(wc -w <"$TMP/big.ids")" -gt 100000 ] && ok ||
    bad "4 MB prompt to tokenize: $(head -c 200 "$TMP/err")"
expect_error "4 MB prompt to run" "more than the context" -- run -m "$L3" -f "$TMP/big.txt" -c 512
# without -c the context stops at the training context (stories260K: 128
# tokens): a longer prompt is an error there (it ran, quadratically, until
# session 18), and -c takes it further
for i in $(seq 40); do printf 'Once upon a time '; done >"$TMP/long.txt"
expect_error "prompt past the training context" "more than the context size 128 (the model's training context" -- \
    run -m "$M" -f "$TMP/long.txt" -n 1
"$PSI" run -m "$M" -f "$TMP/long.txt" -n 1 -c 400 >/dev/null 2>"$TMP/err" && ok || bad "-c 400 past training: $(cat "$TMP/err")"

# ---- psi chat
Q="What is the capital of France?"
# the reference's greedy continuation of this question under the model's
# template (llama.cpp); the generic kernels add floats in the reference's order
want=$("$PSI" detokenize -m "$L3" 36896 45708 84815 75884 118645 27984 94246 126230 2>/dev/null)
printf '%s\n/reset\n%s\n' "$Q" "$Q" | PSI_CPU=generic "$PSI" chat -m "$L3" --temp 0 -n 8 --kv-type f32 >"$TMP/chat" 2>"$TMP/err"
st=$?
[ "$st" -eq 0 ] && ok || bad "chat exit $st: $(cat "$TMP/err")"
[ "$(cat "$TMP/chat")" = "$(printf '%s\n%s' "$want" "$want")" ] && ok ||
    bad "chat answers '$(cat "$TMP/chat")' != the reference '$want' twice (before and after /reset)"
grep -q "conversation cleared" "$TMP/err" && ok || bad "/reset not acknowledged"
# the second turn sees the first: the same as psi run on the whole
# conversation, spelled out by hand in Meta's Llama 3 format
printf '%s\n' "$Q" | "$PSI" chat -m "$L3" --temp 0 -n 8 >"$TMP/chat1" 2>/dev/null
a1=$(cat "$TMP/chat1")
printf '%s\nAnd Spain?\n' "$Q" | "$PSI" chat -m "$L3" --temp 0 -n 8 >"$TMP/chat2" 2>/dev/null
conv="<|begin_of_text|><|start_header_id|>user<|end_header_id|>

$Q<|eot_id|><|start_header_id|>assistant<|end_header_id|>

$a1<|eot_id|><|start_header_id|>user<|end_header_id|>

And Spain?<|eot_id|><|start_header_id|>assistant<|end_header_id|>

"
printf '%s' "$conv" >"$TMP/conv.txt"
"$PSI" run -m "$L3" -f "$TMP/conv.txt" --no-bos --parse-special --temp 0 -n 8 >"$TMP/run2" 2>/dev/null
{ cat "$TMP/chat1" "$TMP/run2"; echo; } >"$TMP/want2" # (answers end in a newline; $(...) would drop it)
cmp -s "$TMP/chat2" "$TMP/want2" && ok ||
    bad "second turn: chat printed '$(cat "$TMP/chat2")', expected '$(cat "$TMP/want2")'"
# an unknown command, a command with an argument and a NUL byte send
# nothing; "//" sends a line that begins with "/"; /exit ends before "Hello"
printf '/foo\n/reset now\nhi\0x\n//reset\n/exit\nHello\n' | "$PSI" chat -m "$L3" --temp 0 -n 8 >"$TMP/chat5" 2>"$TMP/err5"
printf '//reset\n' | "$PSI" chat -m "$L3" --temp 0 -n 8 >"$TMP/chat6" 2>/dev/null
[ -s "$TMP/chat6" ] && cmp -s "$TMP/chat5" "$TMP/chat6" && ok ||
    bad "chat commands: '$(cat "$TMP/chat5")' != '$(cat "$TMP/chat6")' ($(cat "$TMP/err5"))"
grep -q "unknown command '/foo'" "$TMP/err5" && grep -q "/reset takes no argument" "$TMP/err5" &&
    grep -q "NUL byte; not sent" "$TMP/err5" && ok || bad "chat command notes: $(cat "$TMP/err5")"
# a full context is reported and the conversation goes on
printf '%s\n%s\n' "$(head -c 3000 "$TMP/big.txt")" "$Q" | "$PSI" chat -m "$L3" --temp 0 -n 8 -c 200 >"$TMP/chat3" 2>"$TMP/err"
grep -q "context full" "$TMP/err" && ok || bad "context full not reported: $(cat "$TMP/err")"
[ "$(cat "$TMP/chat3")" = "$a1" ] && ok || bad "chat after a refused message: '$(cat "$TMP/chat3")' != '$a1'"
# Ctrl-C stops the answer, not the program
mkfifo "$TMP/fifo"
"$PSI" chat -m "$L3" --temp 0 --ignore-eos -c 4096 <"$TMP/fifo" >"$TMP/chat4" 2>"$TMP/err4" &
pid=$!
exec 3>"$TMP/fifo"
echo "Tell me a long story" >&3
for _ in $(seq 50); do [ -s "$TMP/chat4" ] && break; sleep 0.1; done
kill -INT $pid
sleep 0.3
echo "/exit" >&3
exec 3>&-
wait $pid
st=$?
[ "$st" -eq 0 ] && grep -q "stopped" "$TMP/err4" && ok || bad "Ctrl-C in chat: exit $st, stderr '$(cat "$TMP/err4")'"
rm -f "$TMP/fifo"
expect_error "chat: unknown template" "unknown chat template" -- chat -m "$L3" --chat-template chatml
expect_error "chat: llama3 template on a Llama 2 vocabulary" "lacks" -- chat -m "$M" --chat-template llama3 </dev/null
expect_error "chat with -p" "stdin" -- chat -m "$L3" -p hi
expect_error "serve without model" "no model" -- serve
expect_error "serve unknown option" "unknown option '--bogus'" -- serve -m "$L3" --bogus 1
expect_error "serve --parallel 0" "out of range" -- serve -m "$L3" --parallel 0
for bad in "http://a.example/path" "ftp://a.example" "http://a.example,*" "http://" "a.example" "http://a b" ""; do
    expect_error "serve --cors '$bad'" "--cors: .* or a comma-separated list of origins" -- serve -m "$L3" --cors "$bad"
done
expect_error "serve missing model" "No such file" -- serve -m "$TMP/none.gguf" --port 0
# the model id goes into JSON: a file name that is not UTF-8 needs --alias (before, /v1/models was empty and
# every completion a 500)
expect_error "serve model id not UTF-8" "is not UTF-8: give one with --alias" -- serve -m "$(printf '%s/caf\351.gguf' "$TMP")" --port 0
expect_error "serve empty alias" "is empty" -- serve -m "$L3" --alias "" --port 0
expect_error "serve missing key file" "No such file" -- serve -m "$L3" --api-key-file "$TMP/none.keys"
expect_error "serve bad host" "--host" -- serve -m "$L3" --host no.such.host.invalid --port 0

# ---- psi bench
"$PSI" bench -m "$M" -p 16 -n 4 -r 2 --json >"$TMP/bench.json" 2>"$TMP/err" && ok || bad "bench --json failed: $(cat "$TMP/err")"
for f in model_filename model_type model_size model_n_params n_threads n_prompt n_gen avg_ns stddev_ns avg_ts stddev_ts samples_ts; do
    [ "$(grep -c "\"$f\":" "$TMP/bench.json")" -eq 2 ] || { bad "bench --json lacks $f in both tests"; break; }
done
grep -q '"n_prompt": 16' "$TMP/bench.json" && grep -q '"n_gen": 4' "$TMP/bench.json" && ok || bad "bench --json tests"
PSI_CPU=generic "$PSI" bench -m "$M" -p 4 -n 0 -r 1 --json 2>/dev/null | grep -q '"cpu_kernels": "generic"' && ok ||
    bad "bench --json cpu_kernels under PSI_CPU=generic"
"$PSI" bench -m "$M" -p 4 -n 0 -r 1 --json | grep -Eq '"build_commit": "([0-9a-f]{7,}(-dirty)?|unknown)"' && ok ||
    bad "bench --json build_commit"
"$PSI" bench -m "$M" -p 8 -n 0 -r 1 | grep -q "| pp8 |" && ok || bad "bench table"
# a file name that is not UTF-8 is still named (U+FFFD for the bad byte), not dropped from the JSON
LATIN1="$(printf '%s/mod\351le.gguf' "$TMP")"
ln -sf "$M" "$LATIN1"
"$PSI" bench -m "$LATIN1" -p 4 -n 0 -r 1 --json 2>/dev/null | python3 -c '
import json, sys
t = json.load(sys.stdin)[0]
sys.exit(0 if t["model_filename"].endswith("mod\ufffdle.gguf") else 1)' && ok || bad "bench --json: a file name that is not UTF-8"
rm -f "$LATIN1"
"$PSI" bench -m "$M" -p 8 -n 2 -d 20 -r 1 >"$TMP/bench_d.txt" 2>"$TMP/err" && grep -q "| pp8 @ d20 |" "$TMP/bench_d.txt" &&
    grep -q "| tg2 @ d20 |" "$TMP/bench_d.txt" && ok || bad "bench -d table: $(cat "$TMP/bench_d.txt" "$TMP/err")"
"$PSI" bench -m "$M" -p 4 -n 0 -d 7 -r 1 --json | grep -q '"n_depth": 7' && ok || bad "bench -d --json n_depth"
expect_error "bench -d -1" "out of range" -- bench -m "$M" -d -1
expect_error "bench without model" "no model" -- bench -p 8
expect_error "bench nothing to do" "nothing to measure" -- bench -m "$M" -p 0 -n 0
expect_error "bench -r 0" "out of range" -- bench -m "$M" -r 0
expect_error "bench missing file" "No such file" -- bench -m "$TMP/none.gguf"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
