package squashfs

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/uniforge/packer-plugin-unikernel/rootfs"
)

// fileData is where a regular file's bytes went.
type fileData struct {
	// Set by the ordered writer.
	start  uint64   // image offset of the first block
	blocks []uint32 // on-disk size word of every full block
	sparse uint64   // bytes held by all-zero blocks that take no space
	// Set by the reader.
	fragIndex  uint32 // noFragment when the file has no tail
	fragOffset uint32
	dupOf      int // index of an earlier file with the same bytes, or -1
}

type fragmentEntry struct {
	start uint64
	size  uint32
}

// dataJob is one block on its way from the reader through a compressing
// worker to the ordered writer.
type dataJob struct {
	file  int // index of the file, -1 for a fragment block
	first bool
	in    []byte
	out   []byte // what goes on disk: compressed, or in itself
	size  uint32 // on-disk size word
	ready chan struct{}
}

// dataWriter streams file contents into the image: one goroutine reads
// files in order, a pool compresses blocks, and one goroutine writes the
// results in the reader's order, so the output does not depend on timing.
// At most a few blocks per worker are held in memory.
type dataWriter struct {
	cfg      *config
	enc      *zstd.Encoder
	w        io.Writer
	pos      uint64
	files    []fileData
	frags    []fragmentEntry
	inBufs   sync.Pool
	outBufs  sync.Pool
	zeroes   []byte
	stop     chan struct{}
	stopOnce sync.Once
	err      error
}

func (d *dataWriter) fail(err error) {
	d.stopOnce.Do(func() {
		d.err = err
		close(d.stop)
	})
}

// writeData writes the contents of entries (all regular files) from image
// offset pos on, and returns where each file's bytes went.
func writeData(cfg *config, enc *zstd.Encoder, w io.Writer, pos uint64, entries []*rootfs.Entry) (*dataWriter, error) {
	bs := cfg.blockSize
	d := &dataWriter{
		cfg: cfg, enc: enc, w: w, pos: pos,
		files:  make([]fileData, len(entries)),
		zeroes: make([]byte, bs),
		stop:   make(chan struct{}),
	}
	d.inBufs.New = func() any { return make([]byte, bs) }
	d.outBufs.New = func() any { return make([]byte, 0, bs+bs/64+64) }

	jobs := make(chan *dataJob, cfg.workers)
	order := make(chan *dataJob, 2*cfg.workers+4)
	var workers sync.WaitGroup
	for range cfg.workers {
		workers.Go(func() {
			for j := range jobs {
				d.compress(j)
			}
		})
	}
	written := make(chan struct{})
	go func() {
		defer close(written)
		d.writeInOrder(order)
	}()
	if err := d.read(entries, order, jobs); err != nil {
		d.fail(err)
	}
	close(jobs)
	close(order)
	workers.Wait()
	<-written
	if d.err != nil {
		return nil, d.err
	}
	return d, nil
}

// submit hands j to the workers and the writer; false means stop.
func (d *dataWriter) submit(j *dataJob, order, jobs chan<- *dataJob) bool {
	j.ready = make(chan struct{})
	select {
	case order <- j:
	case <-d.stop:
		return false
	}
	select {
	case jobs <- j:
		return true
	case <-d.stop:
		return false
	}
}

func (d *dataWriter) compress(j *dataJob) {
	defer close(j.ready)
	if j.file >= 0 && bytes.Equal(j.in, d.zeroes) {
		j.size = 0 // a sparse block: the kernel reads zeroes
		return
	}
	out := d.enc.EncodeAll(j.in, d.outBufs.Get().([]byte)[:0])
	if len(out) < len(j.in) {
		j.out, j.size = out, uint32(len(out))
		return
	}
	d.outBufs.Put(out[:0])
	j.out, j.size = j.in, uint32(len(j.in))|dataUncompressed
}

func (d *dataWriter) writeInOrder(order <-chan *dataJob) {
	for j := range order {
		select {
		case <-j.ready:
		case <-d.stop:
		}
		select {
		case <-d.stop:
			continue // drain, so the reader never blocks
		default:
		}
		if j.file >= 0 {
			fd := &d.files[j.file]
			if j.first {
				fd.start = d.pos
			}
			fd.blocks = append(fd.blocks, j.size)
			if j.size == 0 {
				fd.sparse += uint64(len(j.in))
			}
		} else {
			d.frags = append(d.frags, fragmentEntry{start: d.pos, size: j.size})
		}
		if _, err := d.w.Write(j.out); err != nil {
			d.fail(fmt.Errorf("squashfs: writing data: %w", err))
			continue
		}
		d.pos += uint64(len(j.out))
		if len(j.out) > 0 && &j.out[0] != &j.in[0] {
			d.outBufs.Put(j.out[:0])
		}
		d.inBufs.Put(j.in[:cap(j.in)])
	}
}

// read walks the files in order, splitting each into full blocks and a
// tail that is packed with other tails into shared fragment blocks.
func (d *dataWriter) read(entries []*rootfs.Entry, order, jobs chan<- *dataJob) error {
	bs := int64(d.cfg.blockSize)
	sameSize := map[int64]int{}
	for _, e := range entries {
		sameSize[e.Size]++
	}
	seen := map[[sha256.Size]byte]int{}
	frag := d.inBufs.Get().([]byte)[:0]
	scratch := make([]byte, bs)
	fragCount := uint32(0) // fragment blocks handed on so far
	for i, e := range entries {
		fd := &d.files[i]
		fd.fragIndex, fd.dupOf = noFragment, -1
		if e.Size == 0 {
			continue
		}
		nblocks, tail := e.Size/bs, int(e.Size%bs)
		f, err := e.Open()
		if err != nil {
			return fmt.Errorf("squashfs: %s: %w", e.Path, err)
		}
		small := scratch[:0]
		if nblocks == 0 {
			small = scratch[:tail]
			if _, err := io.ReadFull(f, small); err != nil {
				f.Close()
				return fmt.Errorf("squashfs: %s: reading %s: %w", e.Path, e.HostPath, err)
			}
		}
		// Only a file whose size another file shares can be a duplicate.
		if sameSize[e.Size] > 1 {
			sum, err := contentHash(e, small)
			if err != nil {
				f.Close()
				return err
			}
			if j, ok := seen[sum]; ok {
				fd.dupOf = j
				f.Close()
				continue
			}
			seen[sum] = i
		}
		for b := int64(0); b < nblocks; b++ {
			buf := d.inBufs.Get().([]byte)
			if _, err := io.ReadFull(f, buf); err != nil {
				f.Close()
				return fmt.Errorf("squashfs: %s: reading %s: %w", e.Path, e.HostPath, err)
			}
			if !d.submit(&dataJob{file: i, first: b == 0, in: buf}, order, jobs) {
				f.Close()
				return nil
			}
		}
		if tail > 0 {
			if len(frag)+tail > int(bs) {
				if !d.submit(&dataJob{file: -1, in: frag}, order, jobs) {
					f.Close()
					return nil
				}
				fragCount++
				frag = d.inBufs.Get().([]byte)[:0]
			}
			fd.fragIndex = fragCount
			fd.fragOffset = uint32(len(frag))
			if nblocks == 0 {
				frag = append(frag, small...)
			} else {
				n := len(frag)
				frag = frag[:n+tail]
				if _, err := io.ReadFull(f, frag[n:]); err != nil {
					f.Close()
					return fmt.Errorf("squashfs: %s: reading %s: %w", e.Path, e.HostPath, err)
				}
			}
		}
		err = expectEOF(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("squashfs: %s: reading %s: %w", e.Path, e.HostPath, err)
		}
	}
	if len(frag) > 0 {
		d.submit(&dataJob{file: -1, in: frag}, order, jobs)
	}
	return nil
}

// contentHash returns the SHA-256 of a file's bytes: small when the file
// has already been read whole, else by reading it once more.
func contentHash(e *rootfs.Entry, small []byte) ([sha256.Size]byte, error) {
	if int64(len(small)) == e.Size {
		return sha256.Sum256(small), nil
	}
	var sum [sha256.Size]byte
	f, err := e.Open()
	if err != nil {
		return sum, fmt.Errorf("squashfs: %s: %w", e.Path, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return sum, fmt.Errorf("squashfs: %s: reading %s: %w", e.Path, e.HostPath, err)
	}
	h.Sum(sum[:0])
	return sum, nil
}

// expectEOF fails when r has more bytes than its entry said.
func expectEOF(r io.Reader) error {
	var b [1]byte
	n, err := io.ReadFull(r, b[:])
	if n == 0 && err == io.EOF {
		return nil
	}
	if err != nil && err != io.EOF {
		return err
	}
	return fmt.Errorf("the file grew while being read")
}
