#!/usr/bin/env bash
# Starts or stops a throwaway single-node Ceph cluster (1 mon, 1 bluestore osd on a sparse
# file, 1 radosgw) on free loopback ports, for the S3 store's tests and benchmark.
#
#   ceph_cluster.sh start DIR   # prints nothing on success; DIR/env holds the S3 settings
#   ceph_cluster.sh stop DIR    # stops every daemon it started in DIR, then removes DIR
#   ceph_cluster.sh stop-rgw DIR / start-rgw DIR   # for the failure tests
#
# DIR/env is a shell/dotenv file: SNAPVOL_S3_ENDPOINT, SNAPVOL_S3_BUCKET, SNAPVOL_S3_REGION,
# SNAPVOL_S3_ACCESS_KEY, SNAPVOL_S3_SECRET_KEY. A failed start stops what it started.
# Everything binds to 127.0.0.1; auth between the daemons is off (the S3 side still checks
# SigV4). See ../../../shared/notes/ceph-rgw.md for why each setting is there.
set -euo pipefail

cmd=${1:-}
dir=${2:-}
if [[ -z $cmd || -z $dir ]]; then
  echo "usage: $0 start|stop|stop-rgw|start-rgw DIR" >&2
  exit 2
fi

# Ceph daemons fork and linger as zombies for a moment after exiting: a pid is gone only when
# /proc says so, or says Z.
pid_alive() {
  local st
  st=$(awk '/^State:/ {print $2}' "/proc/$1/status" 2>/dev/null) || return 1
  [[ -n $st && $st != Z ]]
}

stop_pidfile() {
  local f=$1 pid
  [[ -s $f ]] || return 0
  pid=$(cat "$f")
  if pid_alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do pid_alive "$pid" || break; sleep 0.1; done
    if pid_alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$f"
}

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

ceph_() { timeout 60 ceph -c "$dir/ceph.conf" "$@"; }
# A ceph client that sends its command before it has the monmap gets EPERM ("problem getting
# command descriptions", "fsid 0000… != …") now and then, whatever the command: the commands
# the start needs are retried (50 × 0.2 s), and printed when they succeed. Use only for
# commands that may be repeated (osd create with a given uuid answers the same id again).
ceph_retry() {
  local out
  for _ in $(seq 1 50); do
    if out=$(ceph_ "$@" 2>>"$dir/log/daemons.err"); then
      printf '%s' "$out"
      return 0
    fi
    sleep 0.2
  done
  echo "ceph_cluster: 'ceph $*' kept failing (see $dir/log/daemons.err)" >&2
  return 1
}

start_rgw() {
  local port
  port=$(cat "$dir/rgw.port")
  # radosgw hangs for minutes when it cannot reach the mon the way it wants: bound it.
  timeout 120 radosgw -c "$dir/ceph.conf" -n client.rgw 2>>"$dir/log/daemons.err"
  for _ in $(seq 1 600); do
    if curl -s -o /dev/null "http://127.0.0.1:$port/"; then return 0; fi
    sleep 0.1
  done
  echo "ceph_cluster: radosgw did not answer on port $port (see $dir/log)" >&2
  return 1
}

stop_all() {
  stop_pidfile "$dir/run/client.rgw.pid"
  stop_pidfile "$dir/run/osd.0.pid"
  stop_pidfile "$dir/run/mon.a.pid"
}

case $cmd in
  stop)
    [[ -d $dir ]] || exit 0
    stop_all
    rm -rf "$dir"
    exit 0
    ;;
  stop-rgw)
    stop_pidfile "$dir/run/client.rgw.pid"
    exit 0
    ;;
  start-rgw)
    start_rgw
    exit 0
    ;;
  start) ;;
  *)
    echo "unknown command $cmd" >&2
    exit 2
    ;;
esac

if [[ -e $dir/ceph.conf ]]; then
  # Left by a run that was killed before its cleanup: the daemons are ours (pid files in DIR).
  stop_all
  rm -rf "$dir"
fi
mkdir -p "$dir"/{run,log,mon.a,osd.0}
dir=$(cd "$dir" && pwd)
# A failed start says why where the test runner shows it: the last lines of every log.
show_logs() {
  local f
  for f in "$dir"/log/*; do
    [[ -s $f ]] || continue
    echo "--- ${f##*/} (last lines)" >&2
    grep -v '^[[:space:]]*$' "$f" | tail -n 12 | cut -c1-300 >&2
  done
}
trap 'rc=$?; if ((rc)); then echo "ceph_cluster: start failed (exit $rc); logs in $dir/log" >&2; show_logs; stop_all; fi' EXIT

mon_port=$(free_port)
rgw_port=$(free_port)
echo "$rgw_port" >"$dir/rgw.port"
fsid=$(cat /proc/sys/kernel/random/uuid)

cat >"$dir/ceph.conf" <<EOF
[global]
fsid = $fsid
mon host = v1:127.0.0.1:$mon_port
mon initial members = a
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv6 = false
ms bind msgr2 = false
auth cluster required = none
auth service required = none
auth client required = none
# radosgw otherwise insists on a secure mon session and hangs with auth off
ms mon client mode = crc
run dir = $dir/run
pid file = $dir/run/\$name.pid
admin socket = $dir/run/\$name.asok
log file = $dir/log/\$name.log
# one osd, size-1 pools
mon allow pool size one = true
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
mon max pg per osd = 1000
osd crush chooseleaf type = 0
mon warn on pool no redundancy = false
# pool creation dominates start-up; these cut it from ~13 s to ~3 s
paxos propose interval = 0.1
paxos min wait = 0.01
# a nearly full build disk must not stop the mon (it refuses to start under 'crit' %)
mon data avail crit = 0
mon data avail warn = 1
# Per-request debug logging costs CPU the tests and the benchmark share with the daemons
# (RGW's default writes three lines per request); errors are still logged.
debug rgw = 0/0
debug ms = 0/0
debug osd = 0/0
debug bluestore = 0/0
debug bluefs = 0/0
debug rocksdb = 0/0
debug bdev = 0/0
debug mon = 0/0
debug paxos = 0/0
debug auth = 0/0
debug objclass = 0/0

[mon]
mon data = $dir/mon.\$id

[osd]
osd data = $dir/osd.\$id
# The crush entry is made by this script. Left on, the osd sends 'osd crush create-or-move'
# and 'set-device-class' at boot, and about one boot in six sends them before it has the
# monmap: the mon answers 'wrong fsid' (zero fsid) and the osd exits.
osd crush update on start = false
osd class update on start = false
osd objectstore = bluestore
# not osd.N/block: mkfs turns that into a symlink to itself
bluestore block path = $dir/osd.\$id.block
bluestore block create = true
bluestore block size = 21474836480
bluestore fsck on mkfs = false
osd memory target = 939524096
bluestore cache autotune = false
bluestore cache size = 134217728

[client.rgw]
# tcp_nodelay: without it RGW sends a chunked reply in two segments and the second waits
# for the client's delayed ACK: ~45 ms per CopyObject (Touch) instead of ~5 ms
rgw frontends = beast endpoint=127.0.0.1:$rgw_port tcp_nodelay=1
rgw data = $dir/rgw
rgw dns name = localhost
rgw thread pool size = 64
EOF

t0=$(date +%s.%N)
monmaptool --create --clobber --fsid "$fsid" --addv a "[v1:127.0.0.1:$mon_port]" "$dir/monmap" >/dev/null
ceph-mon -c "$dir/ceph.conf" -i a --mkfs --monmap "$dir/monmap" >/dev/null
ceph-mon -c "$dir/ceph.conf" -i a 2>>"$dir/log/daemons.err"

# The osd's uuid is chosen here and given to both the mon and mkfs: without it the osd boots
# with a uuid of its own, and about one start in five the mon refuses it ('wrong fsid').
osd_uuid=$(cat /proc/sys/kernel/random/uuid)
osd_id=$(ceph_retry osd create "$osd_uuid") || exit 1
[[ $osd_id == 0 ]] || { echo "ceph_cluster: unexpected osd id $osd_id" >&2; exit 1; }
ceph-osd -c "$dir/ceph.conf" -i 0 --mkfs --osd-uuid "$osd_uuid" >/dev/null 2>"$dir/log/osd-mkfs.err"
# Without its crush entry the osd comes up but no placement group maps to it: radosgw then
# creates its first pool and never answers (CI's s3_cluster_start failures: the mon's log had
# no "osd crush add" at all: it had failed on its own, see ceph_retry).
ceph_retry osd crush add osd.0 1.0 host=localhost root=default >/dev/null ||
  { echo "ceph_cluster: could not add osd.0 to the crush map" >&2; exit 1; }
if ! ceph-osd -c "$dir/ceph.conf" -i 0 2>>"$dir/log/daemons.err"; then
  echo "ceph_cluster: ceph-osd exited at start; trying once more" >&2
  sleep 1
  ceph-osd -c "$dir/ceph.conf" -i 0 2>>"$dir/log/daemons.err"
fi
# The answer of the poll that saw it up decides: asking once more can fail on its own (a
# client that sends its command before it has the monmap gets EPERM, "fsid 0000… != …").
osd_up=0
for _ in $(seq 1 600); do
  if ceph_ osd stat 2>/dev/null | grep -q '1 up'; then osd_up=1; break; fi
  sleep 0.1
done
((osd_up)) || { echo "ceph_cluster: osd did not come up" >&2; exit 1; }

echo "$rgw_port" >"$dir/rgw.port"
start_rgw

access=SNAPVOLTEST$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n' | tr a-f A-F)
secret=$(od -An -N20 -tx1 /dev/urandom | tr -d ' \n')
timeout 60 radosgw-admin -c "$dir/ceph.conf" user create --uid snapvol --display-name snapvol \
  --access-key "$access" --secret "$secret" >/dev/null
bucket=snapvol-test
empty_sha=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
code=$(curl -s -o "$dir/log/bucket-create.out" -w '%{http_code}' -X PUT \
  --aws-sigv4 "aws:amz:us-east-1:s3" --user "$access:$secret" \
  -H "x-amz-content-sha256: $empty_sha" "http://127.0.0.1:$rgw_port/$bucket")
[[ $code == 200 ]] || { echo "ceph_cluster: creating bucket answered $code" >&2; exit 1; }

cat >"$dir/env" <<EOF
SNAPVOL_S3_ENDPOINT=http://127.0.0.1:$rgw_port
SNAPVOL_S3_BUCKET=$bucket
SNAPVOL_S3_REGION=us-east-1
SNAPVOL_S3_ACCESS_KEY=$access
SNAPVOL_S3_SECRET_KEY=$secret
SNAPVOL_CEPH_DIR=$dir
EOF
t1=$(date +%s.%N)
echo "ceph_cluster: started in $(echo "$t1 - $t0" | bc) s; settings in $dir/env" >&2
