package squashfs

import (
	"fmt"
	"math"
	"runtime"
)

// Option changes how Write builds an image.
type Option func(*config)

type config struct {
	modTime   int64
	blockSize int
	level     int
	workers   int
}

// Defaults: 512 KiB blocks and zstd level 6 (the encoder's "better"
// speed). Measured on the host's node closure and a Python standard
// library against mksquashfs's defaults (gzip level 9, 128 KiB blocks),
// pure-Go zstd cannot be both as small and twice as fast at 128 KiB:
// level 6 came out 4.5% larger on node, and level 10 was as small but took
// as much CPU as mksquashfs. At 512 KiB level 6 is smaller on both trees
// at a fifth of the CPU. The price is coarser paging in the guest (a read
// decompresses 512 KiB); WithBlockSize(128<<10) and a level of 10 or more
// trade speed back for that.
const (
	DefaultBlockSize        = 512 << 10
	DefaultCompressionLevel = 6
)

func newConfig(opts []Option) (*config, error) {
	c := &config{blockSize: DefaultBlockSize, level: DefaultCompressionLevel, workers: runtime.GOMAXPROCS(0)}
	for _, o := range opts {
		o(c)
	}
	if c.modTime < 0 || c.modTime > math.MaxUint32 {
		return nil, fmt.Errorf("squashfs: modification time %d does not fit in 32 bits", c.modTime)
	}
	// The kernel refuses blocks smaller than a page or larger than 1 MiB.
	if c.blockSize < 4096 || c.blockSize > 1<<20 || c.blockSize&(c.blockSize-1) != 0 {
		return nil, fmt.Errorf("squashfs: block size %d is not a power of two between 4096 and 1048576", c.blockSize)
	}
	if c.level < 1 || c.level > 22 {
		return nil, fmt.Errorf("squashfs: zstd level %d is not between 1 and 22", c.level)
	}
	if c.workers < 1 {
		c.workers = 1
	}
	return c, nil
}

// WithModTime sets the modification time (seconds since the epoch) stored
// in every inode and in the superblock. The default is 0; callers pass
// SOURCE_DATE_EPOCH.
func WithModTime(t int64) Option { return func(c *config) { c.modTime = t } }

// WithBlockSize sets the data block size: a power of two from 4 KiB to 1 MiB.
func WithBlockSize(n int) Option { return func(c *config) { c.blockSize = n } }

// WithCompressionLevel sets the zstd level (1..22; the encoder maps ranges
// of levels to its four speeds).
func WithCompressionLevel(l int) Option { return func(c *config) { c.level = l } }

// WithWorkers bounds the number of blocks compressed at once (default GOMAXPROCS).
func WithWorkers(n int) Option { return func(c *config) { c.workers = n } }
