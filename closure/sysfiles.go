package closure

import (
	"path"
	"regexp"
	"strings"

	"github.com/uniforge/packer-plugin-unikernel/rootfs"
)

// What a libc (glibc or musl) or Go program reads at run time beyond its
// libraries, kept when present in the root:
//
//   - name service and network tables: /etc/nsswitch.conf, hosts,
//     services, protocols, host.conf, gai.conf;
//   - TLS roots: /etc/ssl/certs whole (the bundle and the hashed links
//     OpenSSL's CApath uses) and the Fedora and Alpine bundles;
//   - the time zone: /etc/localtime with its target, and, when TZ names a
//     zone, that one zoneinfo file. The whole /usr/share/zoneinfo is
//     kept only on request (INCLUDE), since a program that loads arbitrary
//     zones cannot be told from one that does not;
//   - the locale LANG/LC_ALL/LC_CTYPE names, when not C/POSIX.
//
// For glibc also: /etc/ld.so.cache (without it ld.so would not find
// libraries in ld.so.conf directories), the NSS modules files and dns with
// libresolv, a minimal nsswitch.conf when the root has none, and the gconv
// modules when an object other than libc and libstdc++ names iconv_open in
// its dynamic string table (glibc's iconv loads them on demand; which ones cannot be
// known, so the directory is kept whole).
//
// A static program that is neither Go nor libc-based gets none of this.

// dataFiles are the plain files and directories kept when present.
func dataFiles() []string {
	return []string{
		"/etc/nsswitch.conf", "/etc/hosts", "/etc/services", "/etc/protocols",
		"/etc/host.conf", "/etc/gai.conf", "/etc/localtime",
		"/etc/ssl/certs", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem",
	}
}

// minimalNsswitch is written when a glibc program's root has no nsswitch.conf.
const minimalNsswitch = `passwd: files
group: files
shadow: files
hosts: files dns
networks: files
protocols: files
services: files
ethers: files
rpc: files
`

// glibcNSSLibs are dlopened by glibc to resolve names with files and dns.
func glibcNSSLibs() []string {
	return []string{"libnss_files.so.2", "libnss_dns.so.2", "libresolv.so.2"}
}

func (r *resolver) systemFiles() ([]rootfs.Entry, error) {
	var libc, goProg bool
	for _, p := range r.procs {
		libc = libc || p.hasLibc()
		goProg = goProg || p.main.info.IsGo
	}
	if !libc && !goProg {
		return nil, nil
	}
	for _, p := range dataFiles() {
		if exists(r.fsys, p) {
			r.add(p)
		}
	}
	r.timezone()
	r.locale()
	var generated []rootfs.Entry
	for _, p := range r.procs {
		if !p.hasLibc() || p.musl {
			continue
		}
		if !exists(r.fsys, "/etc/nsswitch.conf") && len(generated) == 0 {
			generated = append(generated, rootfs.Entry{Path: "/etc/nsswitch.conf", Mode: 0o644, Data: []byte(minimalNsswitch), Origin: rootfs.Generated})
		}
		if exists(r.fsys, "/etc/ld.so.cache") {
			r.add("/etc/ld.so.cache")
		}
		for _, name := range glibcNSSLibs() {
			r.dlopenIfPresent(p, name)
		}
		if err := r.gconv(p); err != nil {
			return nil, err
		}
	}
	return generated, nil
}

// dlopenIfPresent loads the library name into p when the search finds it.
func (r *resolver) dlopenIfPresent(p *process, name string) {
	if _, ok := p.byName[name]; ok {
		return
	}
	lib, err := r.find(p, name, p.main)
	if err != nil {
		return
	}
	if e, _ := stat(r.fsys, lib.path); e != nil {
		r.loadOptional(p, lib.path, e)
	}
}

// gconv keeps glibc's gconv modules when something in p uses iconv.
func (r *resolver) gconv(p *process) error {
	uses := false
	for _, o := range p.byReal {
		if o.info.UsesIconv && !iconvProvider(o.info.Soname) {
			uses = true
			break
		}
	}
	libc := p.byName["libc.so.6"]
	if !uses || libc == nil {
		return nil
	}
	dirs := []string{path.Join(path.Dir(libc.path), "gconv")}
	for _, t := range p.abi.triplets {
		dirs = append(dirs, "/usr/lib/"+t+"/gconv")
	}
	dirs = append(dirs, "/usr/"+p.abi.libdir+"/gconv", "/usr/lib/gconv")
	for _, d := range dirs {
		if !isDir(r.fsys, d) {
			continue
		}
		var files []string
		if err := walkFiles(r.ctx, r.fsys, d, func(string) bool { return true }, &files); err != nil {
			return err
		}
		for _, f := range files {
			if e, _ := stat(r.fsys, f); e != nil && e.IsRegular() && isSharedObjectName(path.Base(f)) && isELF(e) {
				r.loadOptional(p, f, e)
			} else {
				r.add(f)
			}
		}
		return nil
	}
	r.warnf("%s uses iconv but no gconv directory was found in %v", p.main.path, dirs)
	return nil
}

// iconvProvider is true for libraries whose own iconv_open reference says
// nothing about the app: libc defines it, and libstdc++ uses it only for
// the rarely used codecvt<…, encoding_state>; counting them would put the
// 9 MB of gconv modules into every C++ program.
func iconvProvider(soname string) bool {
	return strings.HasPrefix(soname, "libc.so") || strings.HasPrefix(soname, "libstdc++.so")
}

// timezone keeps the zone file TZ names (TZ=Europe/Berlin or TZ=:/path).
func (r *resolver) timezone() {
	tz, ok := r.o.getenv("TZ")
	if !ok || tz == "" {
		return
	}
	tz = strings.TrimPrefix(tz, ":")
	p := tz
	if !path.IsAbs(tz) {
		p = path.Join("/usr/share/zoneinfo", tz)
	}
	if e, _ := stat(r.fsys, p); e != nil && e.IsRegular() {
		r.add(p)
	}
}

var nonAlnum = regexp.MustCompile(`[^a-z0-9]`)

// locale keeps the compiled locale the environment selects: its directory
// under /usr/lib/locale (glibc spells the codeset normalised: C.utf8), or
// else the locale archive.
func (r *resolver) locale() {
	for _, key := range []string{"LC_ALL", "LC_CTYPE", "LANG"} {
		name, ok := r.o.getenv(key)
		if !ok || name == "" {
			continue
		}
		if name == "C" || name == "POSIX" || strings.Contains(name, "/") {
			return
		}
		cands := []string{name}
		if lang, codeset, ok := strings.Cut(name, "."); ok {
			cset, mod, _ := strings.Cut(codeset, "@")
			norm := lang + "." + nonAlnum.ReplaceAllString(strings.ToLower(cset), "")
			if mod != "" {
				norm += "@" + mod
			}
			cands = append(cands, norm)
		}
		for _, c := range cands {
			if p := path.Join("/usr/lib/locale", c); isDir(r.fsys, p) {
				r.add(p)
				return
			}
		}
		if exists(r.fsys, "/usr/lib/locale/locale-archive") {
			r.add("/usr/lib/locale/locale-archive")
		}
		return
	}
}
