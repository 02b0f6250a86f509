#!/bin/sh
# PID 1 of a kernel VM (installed as /sbin/pybpfmem-init; see vm.py).
#
# Mounts what the project's live checks need, sets up the memory cgroup mode
# named by pbm.cgroup= on the kernel command line, runs /host/cmd (written by
# the host) from a copy of the source tree (/host/src.tar), leaves its stdout, stderr and exit
# code in /host/out, and powers the VM off.
#   pbm.cgroup=v1       v1 memory hierarchy at /sys/fs/cgroup/memory, the command in /vm
#   pbm.cgroup=v2       cgroup2 at /sys/fs/cgroup, +memory at the root, the command alone
#                       in /vm (as systemd-run --scope -p Delegate=yes puts it)
#   pbm.cgroup=v2-root  as v2, the command left in the root cgroup
# PID 1 and its helpers stay in the root cgroup: /vm holds the command's process only
# (vm.py writes /host/cmd as one exec, so no shell stays behind in /vm).
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mount -t tmpfs tmp /tmp
mount -t bpf bpf /sys/fs/bpf 2>/dev/null
mkdir -p /host
# the loopback device up: the live checks make TCP and UDP sockets on 127.0.0.1
busybox ip link set lo up 2>/dev/null || busybox ifconfig lo 127.0.0.1 up
modprobe 9pnet_virtio && modprobe 9p &&
    mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 host /host

off() { sync; busybox poweroff -f; echo o > /proc/sysrq-trigger; sleep 10; }
log() { echo "pybpfmem-init: $*" > /dev/console; }
[ -d /host/out ] || { log "no /host share"; off; }
out=/host/out
echo "boot_s $(cut -d' ' -f1 /proc/uptime)" > $out/times

fail() { log "setup failed: $*"; echo "$*" > $out/setup_error; echo 125 > $out/rc; off; }
mode=$(sed -n 's/.*pbm\.cgroup=\([a-z0-9-]*\).*/\1/p' /proc/cmdline)
case "$mode" in
v1)
    mount -t tmpfs cgroup /sys/fs/cgroup &&
    mkdir /sys/fs/cgroup/memory &&
    mount -t cgroup -o memory memory /sys/fs/cgroup/memory 2>$out/mount_error ||
        fail "no v1 memory controller: mount -t cgroup -o memory failed" \
             "($(grep MEMCG_V1 /boot/config-$(uname -r)))"
    # Before 5.11 a v1 hierarchy is flat unless the root says otherwise (systemd sets it).
    echo 1 > /sys/fs/cgroup/memory/memory.use_hierarchy 2>/dev/null
    cg=/sys/fs/cgroup/memory/vm ;;
v2|v2-root)
    mount -t cgroup2 cgroup2 /sys/fs/cgroup || fail "mount -t cgroup2"
    echo +memory > /sys/fs/cgroup/cgroup.subtree_control || fail "+memory at the cgroup2 root"
    cg=/sys/fs/cgroup/vm
    [ "$mode" = v2-root ] && cg= ;;
*)  fail "pbm.cgroup=v1|v2|v2-root missing from the kernel command line" ;;
esac
[ -z "$cg" ] || mkdir "$cg" || fail "cannot make $cg"

{ uname -r; cat /proc/cmdline; grep cgroup /proc/self/mountinfo; cat /proc/self/cgroup; } > $out/guest.txt
mkdir /tmp/src && tar -xf /host/src.tar -C /tmp/src  # one 9p file: far faster than a tree
# A process list every 30 s, to see where a slow or hung command is.
(while sleep 30; do ps -eo pid,stat,etime,time,args > $out/ps; done) &
cd /tmp/src
echo "setup_s $(cut -d' ' -f1 /proc/uptime)" >> $out/times
# the command alone in $cg: a shell that moves itself there and execs /host/cmd
sh -c '[ -z "$1" ] || echo $$ > "$1/cgroup.procs" || exit 125; exec sh /host/cmd' \
    sh "$cg" > $out/stdout 2> $out/stderr
echo $? > $out/rc
echo "done_s $(cut -d' ' -f1 /proc/uptime)" >> $out/times
log "command exited $(cat $out/rc)"
off
