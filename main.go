// Command packer-plugin-unikernel is the Packer plugin: it registers the
// builder `unikernel` and the post-processors `unikernel-convert` and
// `unikernel-push`, and nothing else.
package main

import (
	"fmt"
	"os"

	"github.com/hashicorp/packer-plugin-sdk/plugin"
	sdkversion "github.com/hashicorp/packer-plugin-sdk/version"

	"github.com/uniforge/packer-plugin-unikernel/builder/unikernel"
	convert "github.com/uniforge/packer-plugin-unikernel/post-processor/unikernel-convert"
	push "github.com/uniforge/packer-plugin-unikernel/post-processor/unikernel-push"
	"github.com/uniforge/packer-plugin-unikernel/version"
)

func main() {
	pps := plugin.NewSet()
	pps.RegisterBuilder(plugin.DEFAULT_NAME, new(unikernel.Builder))
	pps.RegisterPostProcessor("convert", new(convert.PostProcessor))
	pps.RegisterPostProcessor("push", new(push.PostProcessor))
	pps.SetVersion(sdkversion.NewPluginVersion(version.Version(), "", ""))
	if err := pps.Run(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
