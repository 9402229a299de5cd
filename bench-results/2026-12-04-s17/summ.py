import sys, statistics as st, collections
rows=collections.defaultdict(list)
for line in open(sys.argv[1]):
    f=line.split()
    if len(f)<4: continue
    be,name,n=f[0],f[1],f[2]
    kv=dict(zip(f[3::2],map(float,f[4::2])))
    rows[(be,n,name)].append(kv)
print("| backend | assoc | bin | runs | instances/s (median, range) | server user µs/inst | server sys µs/inst | PG µs/inst | ctx switches/inst |")
print("|---|---|---|---|---|---|---|---|---|")
for (be,n,name),l in sorted(rows.items()):
    def m(k): 
        v=[x[k] for x in l if k in x]
        return f"{st.median(v):.0f}" if v else "—"
    rates=[x['rate'] for x in l]
    print(f"| {be} | {n[2:]} | {name} | {len(l)} | {st.median(rates):.0f} ({min(rates):.0f}–{max(rates):.0f}) | {m('user')} | {m('sys')} | {m('pg')} | {st.median([x['ctxsw']/1000 for x in l]):.0f} |")
