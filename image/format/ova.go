package format

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/uniforge/packer-plugin-unikernel/internal/atomicfile"
	"github.com/uniforge/packer-plugin-unikernel/internal/ctxio"
)

// writeOVA writes an OVA: a tar of the OVF descriptor, the disk as a
// streamOptimized VMDK and a manifest with the SHA-256 of both, in the
// order the OVF specification (DSP0243) requires: descriptor first, then
// the files in the order of its References, then the manifest. The VMDK
// is written to a temporary file beside dst first, since the descriptor
// names its size.
func writeOVA(ctx context.Context, src Source, f *os.File, dst string, o Options) error {
	name := o.Name
	if name == "" {
		name = "disk"
	}
	if err := checkOVAName(name); err != nil {
		return err
	}
	diskName := name + "-disk1.vmdk"
	tmp, err := os.CreateTemp(filepath.Dir(dst), atomicfile.TempPattern(dst)+".vmdk")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if err := streamVMDK(ctx, src, tmp, diskName, "lsilogic", o.Workers); err != nil {
		return err
	}
	st, err := tmp.Stat()
	if err != nil {
		return err
	}
	ovf, err := ovfDescriptor(name, diskName, st.Size(), src.Size, o)
	if err != nil {
		return err
	}
	mtime := time.Unix(o.SourceDateEpoch, 0)
	tw := tar.NewWriter(f)
	add := func(n string, size int64, r io.Reader) error {
		hdr := &tar.Header{Name: n, Mode: 0o644, Size: size, ModTime: mtime, Typeflag: tar.TypeReg, Format: tar.FormatUSTAR}
		if size >= 1<<33 {
			hdr.Format = tar.FormatGNU // ustar stops at 8 GiB
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		_, err := io.Copy(tw, ctxio.Reader(ctx, r))
		return err
	}
	ovfName := name + ".ovf"
	if err := add(ovfName, int64(len(ovf)), strings.NewReader(string(ovf))); err != nil {
		return err
	}
	h := sha256.New()
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if err := add(diskName, st.Size(), io.TeeReader(tmp, h)); err != nil {
		return err
	}
	ovfSum := sha256.Sum256(ovf)
	mf := fmt.Sprintf("SHA256(%s)= %s\nSHA256(%s)= %s\n", ovfName, hex.EncodeToString(ovfSum[:]), diskName, hex.EncodeToString(h.Sum(nil)))
	if err := add(name+".mf", int64(len(mf)), strings.NewReader(mf)); err != nil {
		return err
	}
	return tw.Close()
}

func checkOVAName(name string) error {
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') || len(name) > 64 {
			return fmt.Errorf("ova name %q: use at most 64 letters, digits, '-', '_' and '.'", name)
		}
	}
	if name == "." || name == ".." {
		return fmt.Errorf("ova name %q is not a file name", name)
	}
	return nil
}

// ovfDescriptor is an OVF 1.0 envelope for one VM: CPUs, memory, an LSI
// Logic SCSI controller with the disk, a VMXNET3 NIC on "VM Network".
func ovfDescriptor(name, disk string, fileSize, capacity int64, o Options) ([]byte, error) {
	esc := func(s string) string {
		var b strings.Builder
		xml.EscapeText(&b, []byte(s))
		return b.String()
	}
	n := esc(name)
	s := fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:vmw="http://www.vmware.com/schema/ovf" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <References>
    <File ovf:href="%[2]s" ovf:id="file1" ovf:size="%[3]d"/>
  </References>
  <DiskSection>
    <Info>Virtual disk information</Info>
    <Disk ovf:capacity="%[4]d" ovf:capacityAllocationUnits="byte" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
  </DiskSection>
  <NetworkSection>
    <Info>The list of logical networks</Info>
    <Network ovf:name="VM Network">
      <Description>The VM Network network</Description>
    </Network>
  </NetworkSection>
  <VirtualSystem ovf:id="%[1]s">
    <Info>A unikernel virtual machine made by uni</Info>
    <Name>%[1]s</Name>
    <OperatingSystemSection ovf:id="101" vmw:osType="otherLinux64Guest">
      <Info>The kind of installed guest operating system</Info>
    </OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements</Info>
      <System>
        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>
        <vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemIdentifier>%[1]s</vssd:VirtualSystemIdentifier>
        <vssd:VirtualSystemType>vmx-13</vssd:VirtualSystemType>
      </System>
      <Item>
        <rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits>
        <rasd:Description>Number of Virtual CPUs</rasd:Description>
        <rasd:ElementName>%[5]d virtual CPU(s)</rasd:ElementName>
        <rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType>
        <rasd:VirtualQuantity>%[5]d</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits>
        <rasd:Description>Memory Size</rasd:Description>
        <rasd:ElementName>%[6]dMB of memory</rasd:ElementName>
        <rasd:InstanceID>2</rasd:InstanceID>
        <rasd:ResourceType>4</rasd:ResourceType>
        <rasd:VirtualQuantity>%[6]d</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:Address>0</rasd:Address>
        <rasd:Description>SCSI Controller</rasd:Description>
        <rasd:ElementName>SCSI Controller 0</rasd:ElementName>
        <rasd:InstanceID>3</rasd:InstanceID>
        <rasd:ResourceSubType>lsilogic</rasd:ResourceSubType>
        <rasd:ResourceType>6</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AddressOnParent>0</rasd:AddressOnParent>
        <rasd:ElementName>Hard Disk 1</rasd:ElementName>
        <rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource>
        <rasd:InstanceID>4</rasd:InstanceID>
        <rasd:Parent>3</rasd:Parent>
        <rasd:ResourceType>17</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AddressOnParent>7</rasd:AddressOnParent>
        <rasd:AutomaticAllocation>true</rasd:AutomaticAllocation>
        <rasd:Connection>VM Network</rasd:Connection>
        <rasd:Description>VmxNet3 ethernet adapter on &quot;VM Network&quot;</rasd:Description>
        <rasd:ElementName>Ethernet 1</rasd:ElementName>
        <rasd:InstanceID>5</rasd:InstanceID>
        <rasd:ResourceSubType>VmxNet3</rasd:ResourceSubType>
        <rasd:ResourceType>10</rasd:ResourceType>
      </Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
`, n, esc(disk), fileSize, capacity, o.CPUs, o.MemoryMiB)
	return []byte(s), nil
}
