#!/usr/bin/env bash
# A three-node MariaDB Galera cluster on loopback, for the Galera tests (.ci/run) and for trying
# Portico on a multi-primary cluster by hand. Debian's mariadb-server + galera-4; nothing else.
#
#   .ci/galera.sh start [DIR]   start (or find running) nodes 1-3, wait for wsrep_cluster_size=3
#   .ci/galera.sh stop [DIR]    stop the nodes started in DIR, by their pid files
#   .ci/galera.sh status [DIR]  cluster size and readiness of each node
#   .ci/galera.sh rejoin N [DIR]   start node N (2 or 3) again after it stopped or failed: it rejoins
#                                  the running cluster (incremental transfer when the cache allows)
#
# DIR (default /tmp/portico-galera) holds everything: node<N>/{data,my.cnf,mariadbd.pid,mariadbd.sock,error.log}.
# Node N listens for SQL on 127.0.0.1:331N, for group communication on 457N, IST on 458N and state
# transfers (rsync SST) on 459N. root connects over TCP without a password (a test cluster only):
#   GALERA_URLS=mysql://root@127.0.0.1:3311/,mysql://root@127.0.0.1:3312/,mysql://root@127.0.0.1:3313/
# The standalone server on 3306 (/etc/mysql, /var/lib/mysql) is never read or touched: every node runs
# with --defaults-file of its own. Run as root, as CI does: the nodes run as the `mysql` user, so DIR
# must be reachable by it (/tmp is). (As another user the nodes would run as that user; not tested.)
set -euo pipefail

NODES=3
if [ "${1:-}" = rejoin ]; then
  REJOIN="${2:-}"
  DIR="${3:-/tmp/portico-galera}"
else
  DIR="${2:-/tmp/portico-galera}"
fi
PROVIDER=/usr/lib/galera/libgalera_smm.so
CLUSTER_ADDRESS="gcomm://127.0.0.1:4571,127.0.0.1:4572,127.0.0.1:4573"

die() {
  echo "galera.sh: $*" >&2
  exit 1
}

sql_port() { echo $((3310 + $1)); }
node_dir() { echo "$DIR/node$1"; }

# The user the nodes run as: `mysql` when started by root (mariadbd refuses to run as root without
# --user=root), otherwise whoever runs the script.
run_user() {
  if [ "$(id -u)" = 0 ]; then echo mysql; else id -un; fi
}

# The pid of node N's mariadbd, from the pid file this script wrote when it started it (mariadbd's own
# pid file appears only after a joiner's state transfer), checked against /proc.
node_pid() {
  local pidfile pid
  pidfile="$(node_dir "$1")/started.pid"
  [ -s "$pidfile" ] || return 1
  pid="$(cat "$pidfile")"
  # Right after the start $! may still be setsid, which then execs mariadbd in the same process.
  case "$(cat "/proc/$pid/comm" 2>/dev/null)" in
    mariadbd | setsid) ;;
    *) return 1 ;;
  esac
  echo "$pid"
}

# One value from SHOW STATUS on node N over TCP (empty when the node does not answer).
status_of() {
  mariadb --no-defaults --protocol=TCP -h127.0.0.1 -P"$(sql_port "$1")" -uroot -N -B \
    -e "SHOW STATUS LIKE '$2'" 2>/dev/null | awk '{print $2}'
}

write_config() {
  local n=$1 d
  d="$(node_dir "$n")"
  cat >"$d/my.cnf" <<EOF
[mariadbd]
user = $(run_user)
datadir = $d/data
socket = $d/mariadbd.sock
pid-file = $d/mariadbd.pid
log-error = $d/error.log
port = $(sql_port "$n")
bind-address = 127.0.0.1
skip-name-resolve
character-set-server = utf8mb4
collation-server = utf8mb4_unicode_ci
max_connections = 300
innodb_buffer_pool_size = 96M
innodb_log_file_size = 48M
innodb_flush_log_at_trx_commit = 1

# Galera (https://mariadb.com/kb/en/configuring-mariadb-galera-cluster/)
binlog_format = ROW
default_storage_engine = InnoDB
innodb_autoinc_lock_mode = 2
wsrep_on = ON
wsrep_provider = $PROVIDER
wsrep_cluster_name = portico-ci
wsrep_cluster_address = $CLUSTER_ADDRESS
wsrep_node_name = node$n
wsrep_node_address = 127.0.0.1:$((4570 + n))
wsrep_provider_options = "gmcast.listen_addr=tcp://127.0.0.1:$((4570 + n));ist.recv_addr=127.0.0.1:$((4580 + n));gcache.size=64M"
wsrep_sst_method = rsync
wsrep_sst_receive_address = 127.0.0.1:$((4590 + n))
wsrep_slave_threads = 2
# Causal reads: a read waits until the node has applied what the cluster committed before it, so a row
# written through one node (a session, a seat) is seen by the next request through another.
wsrep_sync_wait = 1
EOF
}

start_node() {
  local n=$1 d
  d="$(node_dir "$n")"
  if node_pid "$n" >/dev/null; then
    echo "node$n already running (pid $(node_pid "$n"))"
    return
  fi
  check_ports_free "$n"
  mkdir -p "$d/data"
  write_config "$n"
  local extra=()
  if [ "$n" = 1 ]; then
    if [ ! -d "$d/data/mysql" ]; then
      mariadb-install-db --defaults-file="$d/my.cnf" --auth-root-authentication-method=normal \
        --skip-test-db >"$d/install.log" 2>&1 || die "mariadb-install-db failed for node1, see $d/install.log"
    fi
    # Bootstrap a new cluster when no other node is up (the only case in CI). Galera refuses to
    # bootstrap from a node that was not the last to leave unless it is marked safe; this is a test
    # cluster whose nodes all stop together, so node 1 is always the one to start from.
    if [ -f "$d/data/grastate.dat" ]; then sed -i 's/^safe_to_bootstrap: 0/safe_to_bootstrap: 1/' "$d/data/grastate.dat"; fi
    extra=(--wsrep-new-cluster)
  fi
  # A joining node gets its data from node 1 by rsync. The state-transfer receiver (an rsync daemon)
  # runs as the node's user here, so the node's folder belongs to that user. (A node run as root would
  # get a receiver that switches to `nobody`, and an empty data folder owned by root could not be
  # written: hence the nodes run as mysql.)
  chown -R "$(run_user)": "$d" 2>/dev/null || true
  : >"$d/error.log"
  chown "$(run_user)": "$d/error.log" 2>/dev/null || true
  # setsid: the node does not share the caller's process group (a CI step's Ctrl-C or kill -- -PGID).
  # (Without job control a background job does not lead a process group, so setsid execs: $! is mariadbd.)
  setsid /usr/sbin/mariadbd --defaults-file="$d/my.cnf" "${extra[@]}" </dev/null >>"$d/stdout.log" 2>&1 &
  echo $! >"$d/started.pid"
  echo "node$n starting (SQL 127.0.0.1:$(sql_port "$n"), log $d/error.log)"
}

# Fails when one of node N's ports is taken (another server, or a cluster started from another folder):
# its status would otherwise be read from whatever answers there.
check_ports_free() {
  local n=$1
  for port in "$(sql_port "$n")" $((4570 + n)) $((4580 + n)) $((4590 + n)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      die "port $port (node$n) is already in use on 127.0.0.1: another server, or a cluster started from another folder?"
    fi
  done
}

wait_node() {
  local n=$1 limit=${2:-180}
  for ((i = 0; i < limit * 2; i++)); do
    if ! node_pid "$n" >/dev/null; then
      tail -n 40 "$(node_dir "$n")/error.log" >&2 || true
      die "node$n exited while starting (log: $(node_dir "$n")/error.log)"
    fi
    if [ "$(status_of "$n" wsrep_ready)" = ON ] && [ "$(status_of "$n" wsrep_local_state_comment)" = Synced ]; then
      return 0
    fi
    sleep 0.5
  done
  tail -n 40 "$(node_dir "$n")/error.log" >&2 || true
  die "node$n not ready/synced after ${limit}s (log: $(node_dir "$n")/error.log)"
}

cmd_start() {
  [ -x /usr/sbin/mariadbd ] || die "mariadb-server is not installed (/usr/sbin/mariadbd)"
  [ -f "$PROVIDER" ] || die "galera-4 is not installed ($PROVIDER)"
  command -v rsync >/dev/null || die "rsync is needed for the state transfers"
  mkdir -p "$DIR"
  local running=0
  for n in $(seq 1 $NODES); do node_pid "$n" >/dev/null && running=$((running + 1)); done
  if [ "$running" = "$NODES" ] && [ "$(status_of 1 wsrep_cluster_size)" = "$NODES" ]; then
    echo "cluster already running in $DIR"
    cmd_status
    return
  fi
  [ "$running" = 0 ] || die "some nodes of $DIR are running and some not: .ci/galera.sh stop $DIR first"
  start_node 1
  wait_node 1
  # One joiner at a time: each takes a full state transfer from node 1.
  for n in $(seq 2 $NODES); do
    start_node "$n"
    wait_node "$n"
  done
  local size
  size="$(status_of 1 wsrep_cluster_size)"
  [ "$size" = "$NODES" ] || die "wsrep_cluster_size is '$size', expected $NODES"
  cmd_status
}

cmd_stop() {
  local pids=()
  for n in $(seq $NODES -1 1); do
    local pid
    if pid="$(node_pid "$n")"; then
      kill -TERM "$pid"
      pids+=("$pid")
      # Joiners first, one by one, so node 1 leaves last and is safe to bootstrap from next time.
      for ((i = 0; i < 120; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      if kill -0 "$pid" 2>/dev/null; then
        echo "node$n (pid $pid) did not stop in 60 s: killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
      fi
      echo "node$n stopped (pid $pid)"
    fi
  done
  [ ${#pids[@]} -gt 0 ] || echo "no node of $DIR was running"
}

cmd_status() {
  for n in $(seq 1 $NODES); do
    if pid="$(node_pid "$n")"; then
      echo "node$n pid $pid port $(sql_port "$n"): cluster_size=$(status_of "$n" wsrep_cluster_size) ready=$(status_of "$n" wsrep_ready) state=$(status_of "$n" wsrep_local_state_comment)"
    else
      echo "node$n not running"
    fi
  done
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
rejoin)
  case "$REJOIN" in 2 | 3) ;; *) die "rejoin: node 2 or 3" ;; esac
  [ "$(status_of 1 wsrep_ready)" = ON ] || die "rejoin: node 1 is not ready; start the cluster instead"
  start_node "$REJOIN"
  wait_node "$REJOIN"
  cmd_status
  ;;
*)
  echo "usage: $0 start|stop|status [DIR] | rejoin 2|3 [DIR]" >&2
  exit 2
  ;;
esac
