// Package deflate is the standard library's DEFLATE compressor (Go's
// compress/flate, BSD licence, see LICENSE) changed in two ways that disk
// formats need:
//
//   - a 4 KiB window: QEMU inflates qcow2's compressed clusters with
//     wbits -12, so a longer distance would make the image unreadable;
//   - 3-byte matches, as zlib finds: kernels and boot loaders hold tables
//     of small numbers that 4-byte matching (the standard library's and
//     klauspost/compress's minimum) leaves up to 40% larger.
//
// Its output is plain RFC 1951 DEFLATE that any inflater reads. Only the
// compressor is here; the BestSpeed special case is gone (level 1 is the
// greedy search with short chains).
package deflate
