#!/bin/sh
# shellcheck disable=SC2016,SC2317
# (SC2016: the single-quoted `sh -c` checks expand in that shell; SC2317: functions run through
# check/wait_for.)
# Runs inside the test virtual machine (Debian 12, systemd 252 as PID 1) as /payload/run.sh,
# started once after boot by vmtest.service; its output goes to the host (tests/deploy/
# systemd_vm.sh). Installs /payload/sonde.deb with dpkg -i and checks the service as systemd runs
# it. Prints one line per check (PASS:/FAIL:), FIGURE: lines for the measured numbers, and exits
# with the number of failed checks.
#
# The watchdog is tested with `kill -STOP` on the main process: a stopped agent sends no
# WATCHDOG=1, so systemd must abort it after WatchdogSec and restart it (Restart=on-failure).
P=/payload
fails=0
ok() { echo "PASS: $*"; }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
check() { # check NAME COMMAND...: PASS when COMMAND succeeds
    name=$1; shift
    if "$@"; then ok "$name"; else bad "$name"; fi
}
prop() { systemctl show -p "$1" --value sonde; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# wait_for SECONDS COMMAND...: polls COMMAND every 0.2 s until it succeeds or the time is up.
wait_for() {
    limit=$(($(now_ms) + $1 * 1000)); shift
    while ! "$@"; do
        [ "$(now_ms)" -lt "$limit" ] || return 1
        sleep 0.2
    done
}
journal_has() { journalctl -u sonde --no-pager -o cat | grep -q -- "$1"; }
span() { # span NAME: one span as OTLP/JSON over HTTP to the agent's receiver
    curl -sf -o /dev/null -X POST -H 'Content-Type: application/json' \
        --data "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":{\"stringValue\":\"vm-test\"}}]},\"scopeSpans\":[{\"spans\":[{\"traceId\":\"5b8efff798038103d269b633813fc60c\",\"spanId\":\"eee19b7ec3c1b174\",\"name\":\"$1\",\"kind\":1,\"startTimeUnixNano\":\"1700000000000000000\",\"endTimeUnixNano\":\"1700000000100000000\"}]}]}]}" \
        http://127.0.0.1:4318/v1/traces
}

st=$(timeout 120 systemctl is-system-running --wait)
if [ "$st" = running ]; then ok "system running"; else bad "system state $st"; systemctl --failed --no-pager; fi
echo "FIGURE: boot $(systemd-analyze time 2>/dev/null | head -1)"

# --- install: dpkg -i, the postinst creates the user, enables and starts the unit ---
t0=$(now_ms)
check "dpkg -i sonde.deb" sh -c "dpkg -i $P/sonde.deb > /root/dpkg-i.log 2>&1" || tail -n 20 /root/dpkg-i.log
cp /etc/sonde/sonde.toml /root/pristine.toml
echo "FIGURE: dpkg -i (install, enable, start until READY=1) $(($(now_ms) - t0)) ms"
check "unit enabled" sh -c '[ "$(systemctl is-enabled sonde)" = enabled ]'
check "active after READY=1 (Type=notify)" sh -c '[ "$(systemctl is-active sonde)" = active ]'
status=$(prop StatusText)
echo "INFO: StatusText=$status"
case $status in running:*) ok "STATUS= from sd_notify" ;; *) bad "StatusText '$status'" ;; esac
start_us=$(prop ExecMainStartTimestampMonotonic)
ready_us=$(prop ActiveEnterTimestampMonotonic)
echo "FIGURE: main process start -> READY=1 $(((ready_us - start_us) / 1000)) ms (TCG-emulated VM)"
pid=$(prop MainPID)

# --- who it runs as, and the hardening in force on the running process ---
check "runs as user sonde" sh -c "[ \"\$(ps -o user= -p $pid)\" = sonde ] && [ \"\$(ps -o group= -p $pid)\" = sonde ]"
grep -E '^(Uid|Gid|Groups|CapEff|CapBnd|NoNewPrivs|Seccomp):' "/proc/$pid/status" | sed 's/^/INFO: /'
check "no capabilities (CapEff, CapBnd)" sh -c "grep -q '^CapEff:.*0000000000000000' /proc/$pid/status && grep -q '^CapBnd:.*0000000000000000' /proc/$pid/status"
check "NoNewPrivs and a seccomp filter" sh -c "grep -q '^NoNewPrivs:.*1' /proc/$pid/status && grep -q '^Seccomp:.*2' /proc/$pid/status"
check "StateDirectory /var/lib/sonde (sonde:sonde 0750)" sh -c '[ "$(stat -c %U:%G:%a /var/lib/sonde)" = sonde:sonde:750 ]'
# Inside the service's mount namespace: / is read-only (ProtectSystem=strict), the state
# directory writable, /tmp private, /home read-only.
check "ProtectSystem=strict: /usr and /etc read-only for the service" sh -c "! nsenter -t $pid -m -- touch /etc/sonde-probe 2>/dev/null && ! nsenter -t $pid -m -- touch /usr/sonde-probe 2>/dev/null"
check "StateDirectory writable in the service's namespace" sh -c "nsenter -t $pid -m -- touch /var/lib/sonde/probe && rm -f /var/lib/sonde/probe"
check "PrivateTmp: the service's /tmp is not the host's" sh -c "touch /tmp/host-only && ! nsenter -t $pid -m -- test -e /tmp/host-only"
check "ProtectHome=read-only" sh -c "mkdir -p /home/u && ! nsenter -t $pid -m -- touch /home/u/x 2>/dev/null"
check "PrivateDevices: no /dev/vda in the service's /dev" sh -c "test -e /dev/vda && ! nsenter -t $pid -m -- test -e /dev/vda"

# --- it works: health, OTLP in, output and its own logs in the journal ---
check "health/ready answers 200" curl -sf -o /dev/null http://127.0.0.1:13133/health/ready
check "OTLP/HTTP accepted" span vm-probe-one
check "the span is in the journal (stdout exporter)" wait_for 60 journal_has vm-probe-one
check "the agent's own log lines are in the journal" journal_has "admin server listening"
echo "INFO: journal (last 3 lines):"
journalctl -u sonde --no-pager -n 3 -o short-monotonic | sed 's/^/INFO:   /'

# --- systemctl reload: a changed file is applied, a broken one refused, same process ---
sed -i 's/^interval = "10s"/interval = "5s"/' /etc/sonde/sonde.toml
check "systemctl reload" systemctl reload sonde
check "reload applied (journal: configuration reloaded)" wait_for 60 journal_has "configuration reloaded"
check "reload: same MainPID, still active" sh -c "[ \"\$(systemctl show -p MainPID --value sonde)\" = $pid ] && [ \"\$(systemctl is-active sonde)\" = active ]"
check "/config shows the new interval" sh -c 'curl -sf http://127.0.0.1:13133/config | grep -q "interval = \"5s\""'
echo 'this is = = not toml' >> /etc/sonde/sonde.toml
systemctl reload sonde
check "reload refused (journal)" wait_for 60 journal_has "reload refused"
check "still active on the old configuration" sh -c "[ \"\$(systemctl is-active sonde)\" = active ] && curl -sf -o /dev/null http://127.0.0.1:13133/health/ready"
# Back to the packaged file (a second reload that takes).
cp /root/pristine.toml /etc/sonde/sonde.toml
systemctl reload sonde

# --- the watchdog: a stopped process sends no WATCHDOG=1 ---
restarts=$(prop NRestarts)
wd=$(prop WatchdogUSec)
echo "INFO: WatchdogUSec=$wd NRestarts=$restarts"
t0=$(now_ms)
kill -STOP "$pid"
restarted() { [ "$(prop NRestarts)" -gt "$restarts" ] && [ "$(systemctl is-active sonde)" = active ]; }
check "watchdog: the stopped agent is aborted and restarted" wait_for 90 restarted
echo "FIGURE: SIGSTOP -> restarted and READY again $(($(now_ms) - t0)) ms (WatchdogSec $wd)"
check "journal: Watchdog timeout" journal_has "Watchdog timeout"
check "journal: Failed with result 'watchdog'" sh -c "journalctl -u sonde --no-pager | grep -q \"Failed with result 'watchdog'\""
check "a new MainPID" sh -c "[ \"\$(systemctl show -p MainPID --value sonde)\" != $pid ]"
pid=$(prop MainPID)

# --- systemctl stop drains: a span held by a long batch age comes out at stop ---
cat >> /etc/sonde/sonde.toml <<'EOF'
batch = { max_age = "60s", max_bytes = "1MiB" }
EOF
systemctl reload sonde
check "reload with a 60 s batch age" wait_for 60 sh -c '[ "$(journalctl -u sonde --no-pager -o cat | grep -c "configuration reloaded")" -ge 3 ]'
span vm-probe-drain
sleep 1
if journal_has vm-probe-drain; then bad "the span came out before stop (batch not held)"; else ok "the span is held in the batch"; fi
t0=$(now_ms)
check "systemctl stop" systemctl stop sonde
echo "FIGURE: systemctl stop $(($(now_ms) - t0)) ms"
check "stopped cleanly (inactive, Result=success, status 0)" sh -c "[ \"\$(systemctl is-active sonde)\" = inactive ] && [ \"\$(systemctl show -p Result --value sonde)\" = success ] && [ \"\$(systemctl show -p ExecMainStatus --value sonde)\" = 0 ]"
check "stop drained the held span to the journal" journal_has vm-probe-drain
cp /root/pristine.toml /etc/sonde/sonde.toml
check "systemctl start" systemctl start sonde
check "active again" sh -c '[ "$(systemctl is-active sonde)" = active ]'
pid=$(prop MainPID)

# --- footprint: the service, just started, against the same binary started bare beside it (as
# root, outside systemd, the same configuration on other ports), both idle for 8 s ---
sed -e 's#^data_dir = .*#data_dir = "/root/bare"#' -e 's#127.0.0.1:4317#127.0.0.1:14317#' \
    -e 's#127.0.0.1:4318#127.0.0.1:14318#' -e 's#127.0.0.1:13133#127.0.0.1:23133#' \
    /root/pristine.toml > /root/bare.toml
mkdir -p /root/bare
t0=$(now_ms)
/usr/bin/sonde run --config /root/bare.toml > /dev/null 2> /root/bare.log &
bare=$!
if wait_for 60 curl -sf -o /dev/null http://127.0.0.1:23133/health/ready; then
    echo "FIGURE: bare start -> ready $(($(now_ms) - t0)) ms (TCG-emulated VM)"
    sleep 8
    svc=$(awk '/^VmRSS:/ {r=$2} /^VmHWM:/ {h=$2} END {print r " KiB (peak " h ")"}' "/proc/$pid/status")
    bare_rss=$(awk '/^VmRSS:/ {r=$2} /^VmHWM:/ {h=$2} END {print r " KiB (peak " h ")"}' "/proc/$bare/status")
    echo "FIGURE: idle RSS under systemd $svc, bare $bare_rss"
    ok "bare run for the footprint comparison"
else
    bad "the bare agent did not start: $(tail -n 3 /root/bare.log)"
fi
kill -TERM "$bare"; wait "$bare"

# --- systemd-analyze security: the installed unit, and peers' shipped units offline ---
systemd-analyze security --no-pager sonde.service > /root/security.txt 2>&1
grep -E '^✗' /root/security.txt | sed 's/^/INFO: /'
score=$(grep -o 'Overall exposure level for sonde.service: [0-9.]* [A-Z]*' /root/security.txt | awk '{print $(NF-1), $NF}')
echo "FIGURE: systemd-analyze security sonde.service (loaded): $score"
case $score in *OK | *SAFE) ok "exposure OK or better" ;; *) bad "exposure $score" ;; esac
best_peer=10
for u in /lib/systemd/system/sonde.service "$P"/peer_units/*.service; do
    cp "$u" /root/
    s=$(systemd-analyze security --offline=true --no-pager "/root/$(basename "$u")" 2>/dev/null |
        grep -o 'Overall exposure level for [^:]*: [0-9.]* [A-Z]*' | awk '{print $(NF-1), $NF}')
    echo "FIGURE: systemd-analyze security --offline $(basename "$u"): $s"
    case $u in $P/*) best_peer=$(printf '%s\n%s\n' "$best_peer" "${s% *}" | sort -n | head -1) ;; esac
done
check "sonde's exposure is below every peer unit's" sh -c "awk 'BEGIN { exit !(${score% *} < $best_peer) }'"

# --- removal keeps the state, purge removes it ---
check "dpkg -r" sh -c "dpkg -r sonde > /root/dpkg-r.log 2>&1"
check "removed: unit gone, state kept" sh -c '! systemctl is-active -q sonde && [ -d /var/lib/sonde ]'
check "dpkg -P removes the state directory and the user" sh -c 'dpkg -P sonde > /root/dpkg-p.log 2>&1 && [ ! -e /var/lib/sonde ] && ! getent passwd sonde'

echo "FAILS=$fails"
exit $fails
