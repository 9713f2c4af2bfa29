#!/usr/bin/env bash
# bench/failover_stall.sh [WORKDIR]
# The longest pause in acknowledged writes around a fault. A writer creates
# 64 KiB files through a mount (write + fsync + close, fresh random data)
# without pause and records when each is acknowledged; the script SIGKILLs
# one chunkserver, then freezes the master leader (SIGSTOP for 5 s, then
# SIGCONT: it rejoins as a follower), then SIGKILLs the leader of the time.
# For each fault it prints the
# time from the fault to the next acknowledged write, and the longest gap
# between acknowledgements in the 10 s after it.
# 3 masters, 3 chunkservers: with one chunkserver dead, writes go on at 2
# copies (min_replicas).
source "$(dirname "$0")/lib.sh"
W=${1:-/tmp/tessera-failover-bench}
build
rm -rf "$W"; mkdir -p "$W"
start_cluster "$W/cluster" --mount "$W/mnt"
for _ in $(seq 1 100); do mountpoint -q "$W/mnt" && break; sleep 0.1; done
python3 - "$W/mnt" "$W/acks" <<'PY' &
import os, sys, time
mnt, log = sys.argv[1], open(sys.argv[2], "w", buffering=1)
i = 0
while os.path.exists(mnt + "/.."):
    data = os.urandom(64 << 10)
    try:
        fd = os.open(f"{mnt}/f{i}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, data); os.fsync(fd); os.close(fd)
        log.write(f"{time.time():.6f}\n")
    except OSError as e:
        log.write(f"# {time.time():.6f} {e}\n")
    i += 1
    if os.path.exists(sys.argv[2] + ".stop"):
        break
PY
WRITER=$!
sleep 5
pid_of() { pgrep -f -- "--data-dir $W/cluster/$1" | head -1; }
leader_dir() {
  "$BIN/tessera" --timeout 3 cluster status --json | python3 -c '
import json,sys; s=json.load(sys.stdin)
print(next("master-%d" % m["id"] for m in s["masters"] if m["role"]=="Leader"))'
}
t_cs=$(date +%s.%N); kill -9 "$(pid_of chunkserver-2)"
sleep 12
ld=$(leader_dir); frozen=$(pid_of "$ld"); t_f=$(date +%s.%N); kill -STOP "$frozen"
sleep 5; kill -CONT "$frozen"
sleep 7
ld=$(leader_dir); t_m=$(date +%s.%N); kill -9 "$(pid_of "$ld")"
sleep 12
touch "$W/acks.stop"; wait "$WRITER" 2>/dev/null || true
python3 - "$W/acks" "$t_cs" "$t_m" "$t_f" <<'PY'
import sys
acks, errors = [], 0
for line in open(sys.argv[1]):
    if line.startswith("#"):
        errors += 1
    else:
        acks.append(float(line))
def report(name, t):
    after = [a for a in acks if a > t]
    first = after[0] - t if after else float("inf")
    window = [t] + [a for a in after if a < t + 10]
    gap = max(b - a for a, b in zip(window, window[1:])) if len(window) > 1 else float("inf")
    print(f"{name}_first_ack_after_fault {first:.3f} s")
    print(f"{name}_longest_gap_10s {gap:.3f} s")
report("chunkserver_sigkill", float(sys.argv[2]))
report("leader_sigkill", float(sys.argv[3]))
report("leader_sigstop", float(sys.argv[4]))
print(f"acknowledged_writes {len(acks)}")
print(f"failed_writes {errors}")
PY
