// Command ocibench times uni push and uni pull of an image layout against
// oras push and oras pull of the same files to the same registry, in
// alternated rounds (who goes first alternates too), and reports each one's median wall time and peak
// memory (max RSS). Each round pushes to a fresh repository and pulls into
// an empty cache, so neither side skips a blob the other already sent.
//
//	go run ./bench/ocibench -uni bin/uni -oras oras -registry 127.0.0.1:5000 -image out/hello-node -rounds 5
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"time"
)

type result struct {
	wall   time.Duration
	maxRSS int64 // bytes
}

func main() {
	uni := flag.String("uni", "bin/uni", "the uni binary")
	oras := flag.String("oras", "oras", "the oras binary")
	registry := flag.String("registry", "", "host:port of a plain-HTTP registry on this machine")
	image := flag.String("image", "", "an image layout directory")
	name := flag.String("name", "image", "what the table calls the image")
	rounds := flag.Int("rounds", 5, "alternated rounds")
	flag.Parse()
	if *registry == "" || *image == "" {
		log.Fatal("ocibench: -registry and -image are required")
	}
	files := []string{"kernel", "initrd", "rootfs.img", "config.json"}
	var size int64
	for _, f := range files {
		fi, err := os.Stat(filepath.Join(*image, f))
		if err != nil {
			log.Fatal(err)
		}
		size += fi.Size()
	}
	work, err := os.MkdirTemp("", "ocibench-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(work)

	times := map[string][]result{}
	for r := 0; r < *rounds; r++ {
		uniRef := fmt.Sprintf("%s/bench/uni-%d-%d:1", *registry, os.Getpid(), r)
		orasRef := fmt.Sprintf("%s/bench/oras-%d-%d:1", *registry, os.Getpid(), r)
		cache := filepath.Join(work, fmt.Sprintf("cache-%d", r))
		env := append(os.Environ(), "UNI_CACHE_DIR="+cache)
		steps := []struct {
			key  string
			dir  string
			argv []string
		}{
			{"uni push", "", []string{*uni, "push", *image, uniRef}},
			{"oras push", *image, append([]string{*oras, "push", "--plain-http", "--artifact-type", "application/vnd.uniforge.unikernel.v1+json", orasRef}, files...)},
			{"uni pull", "", []string{*uni, "pull", uniRef, "-o", filepath.Join(work, fmt.Sprintf("uni-%d", r))}},
			{"oras pull", "", []string{*oras, "pull", "--plain-http", orasRef, "-o", filepath.Join(work, fmt.Sprintf("oras-%d", r))}},
		}
		if r%2 == 1 {
			// Alternate who goes first, so that neither always reads the
			// files from a page cache the other warmed.
			steps[0], steps[1], steps[2], steps[3] = steps[1], steps[0], steps[3], steps[2]
		}
		for _, s := range steps {
			res, err := measure(s.dir, env, s.argv)
			if err != nil {
				log.Fatalf("%s: %v", s.key, err)
			}
			times[s.key] = append(times[s.key], res)
		}
	}
	fmt.Printf("| %s (%.1f MB), %d rounds, median | uni | oras | uni/oras |\n|---|---:|---:|---:|\n", *name, float64(size)/1e6, *rounds)
	for _, op := range []string{"push", "pull"} {
		u, o := median(times["uni "+op]), median(times["oras "+op])
		fmt.Printf("| %s: wall time | %.2f s | %.2f s | %.2f× |\n", op, u.wall.Seconds(), o.wall.Seconds(), u.wall.Seconds()/o.wall.Seconds())
		fmt.Printf("| %s: peak memory (max RSS) | %.1f MB | %.1f MB | %.2f× |\n", op, float64(u.maxRSS)/1e6, float64(o.maxRSS)/1e6, float64(u.maxRSS)/float64(o.maxRSS))
	}
}

// measure runs argv and returns its wall time and peak memory.
func measure(dir string, env, argv []string) (result, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir, cmd.Env = dir, env
	start := time.Now()
	out, err := cmd.CombinedOutput()
	wall := time.Since(start)
	if err != nil {
		return result{}, fmt.Errorf("%v\n%s", err, out)
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return result{}, fmt.Errorf("no rusage")
	}
	return result{wall: wall, maxRSS: ru.Maxrss * 1024}, nil
}

// median is the median by wall time; its memory is the largest seen, since
// a peak is what must not grow.
func median(rs []result) result {
	s := slices.Clone(rs)
	slices.SortFunc(s, func(a, b result) int { return int(a.wall - b.wall) })
	m := s[len(s)/2]
	for _, r := range rs {
		m.maxRSS = max(m.maxRSS, r.maxRSS)
	}
	return m
}
