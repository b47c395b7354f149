import os, sys, zipfile, json
proxy, mod, ver, src = sys.argv[1:5]
d = os.path.join(proxy, mod, "@v"); os.makedirs(d, exist_ok=True)
with open(os.path.join(d, "list"), "a") as f: f.write(ver + "\n")
json.dump({"Version": ver, "Time": "2026-11-29T00:00:00Z"}, open(os.path.join(d, ver + ".info"), "w"))
open(os.path.join(d, ver + ".mod"), "w").write(open(os.path.join(src, "go.mod")).read())
with zipfile.ZipFile(os.path.join(d, ver + ".zip"), "w") as z:
    for root, dirs, files in os.walk(src):
        # nested modules are not part of this module's zip
        dirs[:] = [x for x in dirs if not os.path.exists(os.path.join(root, x, "go.mod"))]
        for fn in files:
            p = os.path.join(root, fn)
            z.write(p, mod + "@" + ver + "/" + os.path.relpath(p, src))
