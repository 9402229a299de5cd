#!/usr/bin/env python3
"""pgsplit.py snapshot FILE | diff FILE  -- postgres CPU ticks grouped by role."""
import os, sys, json, re
def snap():
    out = {}
    for pid in os.listdir('/proc'):
        if not pid.isdigit(): continue
        try:
            stat = open(f'/proc/{pid}/stat').read()
            cmd = open(f'/proc/{pid}/cmdline').read().replace('\0', ' ').strip()
        except OSError: continue
        name = stat[stat.find('(')+1:stat.rfind(')')]
        if name != 'postgres': continue
        rest = stat[stat.rfind(')')+1:].split()
        own = int(rest[11]) + int(rest[12]); child = int(rest[13]) + int(rest[14])
        m = re.match(r'postgres: \S+: (.*)', cmd)
        role = m.group(1) if m else 'postmaster'
        if role.startswith('postgres ') or role.startswith('root '):
            role = 'backend'
        elif role.startswith('autovacuum worker'):
            role = 'autovacuum worker'
        out[pid] = (role, own, child)
    return out
if sys.argv[1] == 'snapshot':
    json.dump(snap(), open(sys.argv[2], 'w'))
else:
    before = json.load(open(sys.argv[2])); after = snap()
    roles = {}
    for pid, (role, own, child) in after.items():
        b = before.get(pid, (role, 0, 0))
        roles[role] = roles.get(role, 0) + own - b[1]
        if role == 'postmaster':
            roles['exited children'] = roles.get('exited children', 0) + child - b[2]
    for r, t in sorted(roles.items(), key=lambda x: -x[1]):
        if t: print(f'{r:40s} {t/100:8.2f} s')
