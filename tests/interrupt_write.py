"""interrupt_write.py PSI SRC OUT TYPE — psi quantize interrupted (SIGINT)
while it writes OUT.tmp dies of the signal and leaves neither OUT.tmp nor
OUT. The write phase is caught by polling for OUT.tmp; exit 1 when the
file is left, or when five tries never catch the phase."""
import os
import signal
import subprocess
import sys

psi, src, out, typ = sys.argv[1:5]
tmp = out + ".tmp"
for attempt in range(5):
    for p in (out, tmp):
        if os.path.exists(p):
            os.unlink(p)
    proc = subprocess.Popen([psi, "quantize", src, out, typ], stderr=subprocess.DEVNULL)
    seen = False
    while proc.poll() is None:
        if os.path.exists(tmp):
            proc.send_signal(signal.SIGINT)
            seen = True
            break
    rc = proc.wait()
    if seen and rc != 0:
        left = os.path.exists(tmp)
        if rc == -signal.SIGINT and not left and not os.path.exists(out):
            sys.exit(0)
        print(f"interrupted while writing: exit {rc}, {out}.tmp left: {left}")
        sys.exit(1)
print("the write phase was never caught in 5 tries")
sys.exit(1)
