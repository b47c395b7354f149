package oci

import (
	"github.com/uniforge/packer-plugin-unikernel/spec"
)

// The artifact's types, written once (docs/oci-artifact.md is their spec).
const (
	// ArtifactType is the artifactType of our image manifest (OCI 1.1): what
	// tells a registry UI, oras and uni pull that the manifest is a unikernel.
	ArtifactType = "application/vnd.uniforge.unikernel.v1+json"

	// ConfigMediaType is config.json, as the manifest's config blob and as
	// its layer titled config.json (the same blob, stored once).
	ConfigMediaType = "application/vnd.uniforge.unikernel.config.v1+json"
	KernelMediaType = "application/vnd.uniforge.unikernel.kernel.v1"          // a Linux bzImage
	InitrdMediaType = "application/vnd.uniforge.unikernel.initrd.v1"          // a compressed newc cpio
	RootfsMediaType = "application/vnd.uniforge.unikernel.rootfs.v1.squashfs" // rootfs.img
	DiskMediaType   = "application/vnd.uniforge.unikernel.disk.v1.raw"        // disk.img, only with --disk
	SBOMMediaType   = "application/spdx+json"                                 // sbom.spdx.json, a referrer

	// OCI media types of the manifests we write and read.
	ManifestMediaType = "application/vnd.oci.image.manifest.v1+json"
	IndexMediaType    = "application/vnd.oci.image.index.v1+json"
	// EmptyMediaType is the OCI empty descriptor's, the config of the SBOM referrer.
	EmptyMediaType = "application/vnd.oci.empty.v1+json"
	// ImageConfigMediaType and LayerMediaType are those of the ordinary
	// container images uni writes: kernel bundle images and the frontend image.
	ImageConfigMediaType = "application/vnd.oci.image.config.v1+json"
	LayerMediaType       = "application/vnd.oci.image.layer.v1.tar+gzip"
)

// Labels of a kernel bundle image (in its image config), also set as
// annotations of its manifest: what the bundle is, readable without
// downloading it. An image without LabelKernelBundleDigest is not a bundle.
const (
	LabelKernelBundleDigest  = "io.uniforge.kernel.bundle.digest"  // bundle.json's digest: "sha256:<hex>"
	LabelKernelBundleRelease = "io.uniforge.kernel.bundle.release" // the kernel's `uname -r`
	LabelKernelBundleVersion = "io.uniforge.kernel.bundle.version" // the package version it was made from
)

// Annotation keys.
const (
	AnnotationTitle    = "org.opencontainers.image.title" // on every layer: the file name
	AnnotationCreated  = "org.opencontainers.image.created"
	AnnotationVersion  = "org.opencontainers.image.version"
	AnnotationSource   = "org.opencontainers.image.source"
	AnnotationRevision = "org.opencontainers.image.revision"
	// AnnotationKernelRelease is the kernel's `uname -r`.
	AnnotationKernelRelease = "io.uniforge.unikernel.kernel.release"
	// AnnotationKernelDigest is the sha256 of the kernel bundle the image was built on.
	AnnotationKernelDigest = "io.uniforge.unikernel.kernel.digest"
	// AnnotationDescribes, on an SBOM manifest, is the digest of the image
	// manifest (one platform's) whose rootfs.img the SBOM describes: its
	// subject is the index, which several platforms share.
	AnnotationDescribes = "io.uniforge.unikernel.sbom.describes"
)

// The platform uni pull takes by default; an image's own is Platform's.
const (
	PlatformOS   = "linux"
	PlatformArch = "amd64"
)

// fileTypes maps each file a manifest may carry, by its title, to its media
// type. Nothing else is pulled.
var fileTypes = map[string]string{
	spec.ConfigFile: ConfigMediaType,
	spec.KernelFile: KernelMediaType,
	spec.InitrdFile: InitrdMediaType,
	spec.RootfsFile: RootfsMediaType,
	spec.DiskFile:   DiskMediaType,
}

// MediaTypeOf is the media type of the layout file name, "" for a name a
// manifest of ours does not carry.
func MediaTypeOf(name string) string { return fileTypes[name] }
