package format

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"

	"github.com/uniforge/packer-plugin-unikernel/internal/deflate"
)

// qcow2 constants (docs/interop/qcow2.txt in QEMU's tree).
const (
	qcowClusterBits = 16
	qcowCluster     = 1 << qcowClusterBits // 64 KiB, QEMU's default
	qcowL2Entries   = qcowCluster / 8      // 8192: one L2 table maps 512 MiB
	qcowRefEntries  = qcowCluster / 2      // 16-bit refcounts: one block counts 32768 clusters
	qcowCopied      = 1 << 63              // refcount is exactly 1
	qcowCompressed  = 1 << 62
	qcowHeaderLen   = 112
	// x = 62 - (cluster_bits - 8): bits 0..x-1 of a compressed cluster's
	// descriptor hold its offset, bits x..61 its extra sectors.
	qcowCsizeShift = 62 - (qcowClusterBits - 8)
)

// writeQcow2 writes a qcow2 v3 image: the header in cluster 0, then the
// data clusters in disk order with each L2 table right after the last of
// its 512 MiB, then the L1 table, the refcount blocks and the refcount
// table. All-zero clusters are left unallocated. With o.Compress every
// cluster is deflated (in parallel) and kept compressed when that saves
// space, packed back to back as QEMU packs them.
func writeQcow2(ctx context.Context, src Source, f *os.File, _ string, o Options) error {
	q := &qcowWriter{f: f, pos: qcowCluster}
	if _, err := f.Seek(qcowCluster, io.SeekStart); err != nil {
		return err
	}
	q.w = bufio.NewWriterSize(f, 1<<20)
	q.refs = []uint16{1} // the header cluster
	q.l1 = make([]uint64, (src.Size+qcowCluster*qcowL2Entries-1)/(qcowCluster*qcowL2Entries))
	q.l2idx = -1
	workers := 0
	if o.Compress {
		workers = o.Workers
	}
	var err error
	if workers == 0 {
		err = scanBuf(ctx, src, qcowCluster, func(idx int64, b []byte) error { return q.cluster(idx, b, nil) })
	} else {
		err = pipeline(ctx, src, qcowCluster, workers, newRawDeflater, deflateJob, func(j *job) error {
			return q.cluster(j.idx, j.in, j.out.Bytes())
		})
	}
	if err != nil {
		return err
	}
	if err := q.finish(src.Size); err != nil {
		return err
	}
	return nil
}

type qcowWriter struct {
	f     *os.File
	w     *bufio.Writer
	pos   int64    // where the next byte goes
	refs  []uint16 // refcount of every host cluster written so far
	l1    []uint64
	l2    [qcowL2Entries]uint64
	l2idx int64 // the L1 index whose L2 table is being filled, -1 for none
	// Clusters that did not compress wait here (at most qcowPending)
	// while compressed ones fill the host cluster being packed, so that
	// aligning them wastes little; see cluster.
	pending []pendingCluster
}

// qcowPending bounds the clusters held back: 1 MiB.
const qcowPending = 16

type pendingCluster struct {
	idx  int64
	data []byte
}

func (q *qcowWriter) write(b []byte) error {
	_, err := q.w.Write(b)
	q.pos += int64(len(b))
	return err
}

// align pads to the next cluster boundary.
func (q *qcowWriter) align() error {
	if pad := roundUp(q.pos, qcowCluster) - q.pos; pad > 0 {
		return q.write(zeroPage[:pad])
	}
	return nil
}

// ref counts one more use of every host cluster in [off, end).
func (q *qcowWriter) ref(off, end int64) {
	for c := off / qcowCluster; c <= (end-1)/qcowCluster; c++ {
		for int64(len(q.refs)) <= c {
			q.refs = append(q.refs, 0)
		}
		q.refs[c]++
	}
}

// cluster stores the guest cluster idx: compressed when packed is given
// and smaller than a cluster (as QEMU decides), else as is. QEMU packs
// compressed clusters back to back and aligns plain ones to a cluster, so
// a plain cluster between compressed ones would waste the rest of a host
// cluster: plain clusters wait until the one being packed is nearly full.
func (q *qcowWriter) cluster(idx int64, data, packed []byte) error {
	if l1 := idx / qcowL2Entries; l1 != q.l2idx {
		if err := q.flushL2(); err != nil {
			return err
		}
		q.l2idx = l1
	}
	if packed == nil || len(packed) >= qcowCluster {
		if packed == nil {
			return q.plain(idx, data)
		}
		q.pending = append(q.pending, pendingCluster{idx, append([]byte(nil), data...)})
		if len(q.pending) < qcowPending {
			return nil
		}
		return q.flushPending()
	}
	off := q.pos
	end := off + int64(len(packed))
	sectors := (end-1)/512 - off/512 // extra sectors after the first
	q.l2[idx%qcowL2Entries] = qcowCompressed | uint64(sectors)<<qcowCsizeShift | uint64(off)
	// QEMU counts whole sectors, from the one the data starts in.
	q.ref(off&^511, roundUp(end, 512))
	if err := q.write(packed); err != nil {
		return err
	}
	if len(q.pending) > 0 && roundUp(q.pos, qcowCluster)-q.pos < 4096 {
		return q.flushPending()
	}
	return nil
}

// plain writes a cluster as is, at the next cluster boundary.
func (q *qcowWriter) plain(idx int64, data []byte) error {
	if err := q.align(); err != nil {
		return err
	}
	q.l2[idx%qcowL2Entries] = qcowCopied | uint64(q.pos)
	q.ref(q.pos, q.pos+qcowCluster)
	return q.write(data)
}

func (q *qcowWriter) flushPending() error {
	for _, p := range q.pending {
		if err := q.plain(p.idx, p.data); err != nil {
			return err
		}
	}
	q.pending = q.pending[:0]
	return nil
}

// flushL2 writes the L2 table being filled, if any, and points L1 at it.
func (q *qcowWriter) flushL2() error {
	if q.l2idx < 0 {
		return nil
	}
	if err := q.flushPending(); err != nil {
		return err
	}
	if err := q.align(); err != nil {
		return err
	}
	q.l1[q.l2idx] = qcowCopied | uint64(q.pos)
	q.ref(q.pos, q.pos+qcowCluster)
	var b [qcowCluster]byte
	for i, e := range q.l2 {
		binary.BigEndian.PutUint64(b[i*8:], e)
	}
	q.l2 = [qcowL2Entries]uint64{}
	q.l2idx = -1
	return q.write(b[:])
}

// finish writes L1, the refcounts and the header.
func (q *qcowWriter) finish(size int64) error {
	if err := q.flushL2(); err != nil {
		return err
	}
	if err := q.align(); err != nil {
		return err
	}
	l1Off := q.pos
	l1Bytes := roundUp(max(int64(len(q.l1))*8, 1), qcowCluster)
	b := make([]byte, l1Bytes)
	for i, e := range q.l1 {
		binary.BigEndian.PutUint64(b[i*8:], e)
	}
	q.ref(q.pos, q.pos+l1Bytes)
	if err := q.write(b); err != nil {
		return err
	}
	// The refcount blocks and table count themselves: find the smallest
	// numbers of each that cover every cluster, their own included.
	used := q.pos / qcowCluster
	var blocks, table int64
	for {
		total := used + blocks + table
		nb := (total + qcowRefEntries - 1) / qcowRefEntries
		nt := (nb*8 + qcowCluster - 1) / qcowCluster
		if nb == blocks && nt == table {
			break
		}
		blocks, table = nb, nt
	}
	blocksOff := q.pos
	q.ref(blocksOff, blocksOff+(blocks+table)*qcowCluster)
	if int64(len(q.refs)) != used+blocks+table {
		return fmt.Errorf("qcow2: refcounts cover %d clusters, the file has %d", len(q.refs), used+blocks+table)
	}
	rb := make([]byte, qcowCluster)
	for i := range blocks {
		clear(rb)
		for j := int64(0); j < qcowRefEntries && i*qcowRefEntries+j < int64(len(q.refs)); j++ {
			binary.BigEndian.PutUint16(rb[j*2:], q.refs[i*qcowRefEntries+j])
		}
		if err := q.write(rb); err != nil {
			return err
		}
	}
	tableOff := q.pos
	tb := make([]byte, table*qcowCluster)
	for i := range blocks {
		binary.BigEndian.PutUint64(tb[i*8:], uint64(blocksOff+i*qcowCluster))
	}
	if err := q.write(tb); err != nil {
		return err
	}
	if err := q.w.Flush(); err != nil {
		return err
	}
	h := make([]byte, qcowHeaderLen+8) // the header, then the end of its extensions
	be := binary.BigEndian
	copy(h, "QFI\xfb")
	be.PutUint32(h[4:], 3)
	be.PutUint32(h[20:], qcowClusterBits)
	be.PutUint64(h[24:], uint64(size))
	be.PutUint32(h[36:], uint32(len(q.l1)))
	be.PutUint64(h[40:], uint64(l1Off))
	be.PutUint64(h[48:], uint64(tableOff))
	be.PutUint32(h[56:], uint32(table))
	be.PutUint32(h[96:], 4) // refcount_order: 16-bit refcounts
	be.PutUint32(h[100:], qcowHeaderLen)
	// h[104]: compression type 0, deflate
	_, err := q.f.WriteAt(h, 0)
	return err
}

// deflateLevel is the level of every compressed cluster and grain: with
// internal/deflate's 3-byte matches it packs a disk as small as zlib's
// default level (QEMU's) does, in less time.
const deflateLevel = 5

// rawDeflater deflates one cluster; internal/deflate's window is QEMU's.
type rawDeflater struct{ w *deflate.Writer }

func newRawDeflater() *rawDeflater {
	w, err := deflate.NewWriter(io.Discard, deflateLevel)
	if err != nil {
		panic(err) // a valid constant level
	}
	return &rawDeflater{w}
}

func deflateJob(d *rawDeflater, j *job) error {
	d.w.Reset(&j.out)
	if _, err := d.w.Write(j.in); err != nil {
		return err
	}
	return d.w.Close()
}
