#!/usr/bin/env bash
# Fuzzes every cargo-fuzz target under fuzz/ (README "Tests"; not part of CI, it takes hours):
# seeds each target's corpus from tests/fixtures, runs it for a number of executions, niced,
# one process at a time, and prints and writes a summary per target (executions, exec/s,
# seconds, corpus size, crashes). Exits non-zero when any target crashed, timed out or ran out
# of memory; libFuzzer leaves the input under fuzz/artifacts/TARGET/.
#
#   scripts/fuzz.sh [--runs N] [--sanitizer address|none] [--max-len BYTES] [TARGET...]
#
# Defaults: 10 000 000 executions per target, every target, inputs of at most 8 KiB (the
# largest fixture seed is 7 KB), and sanitizer `none`: with `address` the build fails (cc-rs compiles zstd-sys with ASan, and
# rdkafka-sys's configure then cannot link against it), and slaflow has no `unsafe`, so the
# panics, overflows and debug assertions this run catches are what fuzzing finds here.
# Works on a stable toolchain: cargo-fuzz needs nightly flags, so RUSTC_BOOTSTRAP=1 is set.
# Needs `cargo install cargo-fuzz --locked`. The build goes to $CARGO_TARGET_DIR/fuzz
# (target/fuzz by default), the summary to that directory's summary.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

runs=10000000
sanitizer=none
max_len=8192
targets=()
while (($#)); do
    case $1 in
        --runs) runs=$2; shift 2 ;;
        --sanitizer) sanitizer=$2; shift 2 ;;
        --max-len) max_len=$2; shift 2 ;;
        -h | --help) sed -n '2,17p' "$0"; exit 0 ;;
        -*) echo "fuzz.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
        *) targets+=("$1"); shift ;;
    esac
done

command -v cargo-fuzz >/dev/null || {
    echo "fuzz.sh: cargo-fuzz is missing: cargo install cargo-fuzz --locked" >&2
    exit 2
}
export RUSTC_BOOTSTRAP=1
target_dir=${CARGO_TARGET_DIR:-$repo/target}/fuzz
summary=$target_dir/summary.txt
mkdir -p "$target_dir/logs"
if ((${#targets[@]} == 0)); then
    mapfile -t targets < <(cd fuzz && cargo fuzz list)
fi

# The fixture directories that seed each target's corpus.
seeds_of() {
    case $1 in
        zabbix_export) echo zabbix_export ;;
        zabbix_webhook) echo zabbix_webhook ;;
        alertmanager) echo alertmanager ;;
        datadog_webhook) echo datadog_webhook datadog_webhook/templates ;;
        datadog_apm | datadog_apm_diff) echo datadog_apm ;;
        datadog_msgpack | datadog_msgpack_diff) echo datadog_msgpack ;;
        icinga2) echo icinga2 ;;
        pagerduty) echo pagerduty ;;
        otlp_json) echo otlp ;;
        otlp_proto) echo otlp_proto ;;
    esac
}

# Copies (never moves) the target's fixtures and its kept inputs (tests/fixtures/fuzz/TARGET,
# replayed by tests/fuzz_regressions.rs) into its corpus, plus the seeds a target with a
# header byte needs: `lines` takes a format byte, `http_body` an encoding byte and a limit.
seed() {
    local target=$1 corpus=$2 dir file
    for dir in $(seeds_of "$target") "fuzz/$target"; do
        for file in tests/fixtures/$dir/*; do
            case $file in *.md | *.txt | *.yaml) continue ;; esac
            if [[ -f $file && ! -e $corpus/${file##*/} ]]; then cp "$file" "$corpus/"; fi
        done
    done
    case $target in
        lines)
            for file in tests/fixtures/zabbix_export/*.ndjson; do
                { printf 0; cat "$file"; } >"$corpus/$(basename "$file")"
            done
            for file in tests/fixtures/icinga2/*.json; do
                { printf 1; cat "$file"; } >"$corpus/$(basename "$file")"
            done
            ;;
        http_body)
            file=tests/fixtures/alertmanager/resolved_with_fingerprint_pythonwebhook_2022.json
            # Byte 0 picks the encoding (0 identity, 1 gzip, 3 deflate, 4 zstd), 1-2 the limit.
            { printf '\x00\xff\xff'; cat "$file"; } >"$corpus/identity"
            { printf '\x01\xff\xff'; gzip -c "$file"; } >"$corpus/gzip"
            { printf '\x01\x00\x10'; gzip -c "$file"; } >"$corpus/gzip_over_limit"
            { printf '\x03\xff\xff'; python3 -c 'import sys, zlib; sys.stdout.buffer.write(zlib.compress(sys.stdin.buffer.read()))' <"$file"; } >"$corpus/deflate"
            { printf '\x04\xff\xff'; zstd -q -c "$file"; } >"$corpus/zstd"
            ;;
    esac
}

# One figure of libFuzzer's final stats (-print_final_stats=1) from a log.
stat() { sed -n "s/^stat::$1: *//p" "$2" | tail -1; }

echo "fuzz.sh: building ${#targets[@]} targets (sanitizer $sanitizer) into $target_dir"
for target in "${targets[@]}"; do
    (cd fuzz && nice -n 19 cargo fuzz build -s "$sanitizer" --target-dir "$target_dir" "$target")
done

failed=0
printf '%-22s %12s %9s %8s %7s %8s %s\n' target executions exec/s seconds corpus crashes status |
    tee "$summary"
for target in "${targets[@]}"; do
    corpus=$repo/fuzz/corpus/$target
    artifacts=$repo/fuzz/artifacts/$target
    log=$target_dir/logs/$target.log
    mkdir -p "$corpus" "$artifacts"
    seed "$target" "$corpus"
    before=$(find "$artifacts" -type f | wc -l)
    start=$(date +%s)
    status=ok
    # -jobs/-workers stay at their default (one process); -timeout and -rss_limit_mb make a
    # hang or a memory blow-up a finding, not a stuck run.
    (cd fuzz && nice -n 19 cargo fuzz run -s "$sanitizer" --target-dir "$target_dir" "$target" \
        "$corpus" -- -runs="$runs" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$artifacts/") >"$log" 2>&1 || status=FAILED
    seconds=$(($(date +%s) - start))
    crashes=$(($(find "$artifacts" -type f | wc -l) - before))
    ((crashes == 0)) || status=FAILED
    [[ $status == ok ]] || failed=1
    printf '%-22s %12s %9s %8s %7s %8s %s\n' "$target" "$(stat number_of_executed_units "$log")" \
        "$(stat average_exec_per_sec "$log")" "$seconds" "$(find "$corpus" -type f | wc -l)" \
        "$crashes" "$status" | tee -a "$summary"
done
echo "fuzz.sh: summary in $summary, logs in $target_dir/logs, findings in fuzz/artifacts/"
exit "$failed"
