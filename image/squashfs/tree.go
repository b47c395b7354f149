package squashfs

import (
	"fmt"
	"path"
	"sort"

	"github.com/uniforge/packer-plugin-unikernel/rootfs"
)

// node is one entry of the tree being written, with what the inode and
// directory tables need to know about it.
type node struct {
	e        *rootfs.Entry
	name     string
	parent   *node
	children []*node // sorted by name
	file     int     // index among the regular files, for regular files
	number   uint32  // inode number, from 1
	ref      uint64  // where its inode is in the inode table
}

// buildNodes turns the tree into nodes, and lists its regular files in
// the order their bytes are written (node.file indexes that list).
func buildNodes(t *rootfs.Tree) (*node, []*rootfs.Entry, error) {
	byPath := map[string]*node{}
	var root *node
	var regular []*node
	err := t.Walk(func(e *rootfs.Entry) error {
		if basicType(e.Mode) == 0 {
			return fmt.Errorf("squashfs: %s: unsupported file type %s", e.Path, e.Mode.Type())
		}
		n := &node{e: e, name: path.Base(e.Path), file: -1}
		if e.Path == "/" {
			root = n
		} else {
			if len(n.name) > maxNameLen {
				return fmt.Errorf("squashfs: %s: name longer than %d bytes", e.Path, maxNameLen)
			}
			parent := byPath[path.Dir(e.Path)]
			if parent == nil || !parent.e.IsDir() {
				return fmt.Errorf("squashfs: %s: parent is not a directory", e.Path)
			}
			n.parent = parent
			parent.children = append(parent.children, n)
		}
		switch {
		case e.IsDir():
			byPath[e.Path] = n
		case e.IsRegular():
			regular = append(regular, n)
		case e.IsSymlink():
			if len(e.Link) == 0 || len(e.Link) > maxSymlinkLen {
				return fmt.Errorf("squashfs: %s: symlink target length %d is not between 1 and %d", e.Path, len(e.Link), maxSymlinkLen)
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	if root == nil {
		return nil, nil, fmt.Errorf("squashfs: the tree has no root directory")
	}
	return root, numberFiles(regular), nil
}

// numberInodes gives inode numbers in the order writeDir writes the
// inodes: every directory after everything below it.
func numberInodes(n *node, next *uint32) {
	for _, c := range n.children {
		if c.e.IsDir() {
			numberInodes(c, next)
		} else {
			*next++
			c.number = *next
		}
	}
	*next++
	n.number = *next
}

// idTable maps the uids and gids in use to their index in the id table.
type idTable struct {
	ids   []uint32 // sorted
	index map[uint32]uint16
}

func newIDTable(t *rootfs.Tree) (*idTable, error) {
	set := map[uint32]bool{}
	t.Walk(func(e *rootfs.Entry) error {
		set[e.UID], set[e.GID] = true, true
		return nil
	})
	if len(set) > 1<<16 {
		return nil, fmt.Errorf("squashfs: %d distinct uids and gids, at most 65536 fit", len(set))
	}
	it := &idTable{index: map[uint32]uint16{}}
	for id := range set {
		it.ids = append(it.ids, id)
	}
	sort.Slice(it.ids, func(i, j int) bool { return it.ids[i] < it.ids[j] })
	for i, id := range it.ids {
		it.index[id] = uint16(i)
	}
	return it, nil
}

// numberFiles numbers the regular files in the order their bytes are
// written: the tree's own order, which keeps a directory's files (and a
// module's sources and caches) together in shared fragment blocks; an
// order by extension was tried and compressed worse on a Python tree.
func numberFiles(nodes []*node) []*rootfs.Entry {
	files := make([]*rootfs.Entry, len(nodes))
	for i, n := range nodes {
		n.file = i
		files[i] = n.e
	}
	return files
}
