// Command vmdi-csi-hostpath is a small, real CSI driver for the project's test node.
//
// Why it exists: the upstream kubernetes-csi hostpath driver and node-driver-registrar
// are not served by the Go module proxy reachable here (see hack/cluster/README.md for
// the evidence), so this driver does the same job the same way: volumes are
// directories (Filesystem) or sparse files attached to loop devices (Block) under
// --data-dir, published into pods with bind mounts. It speaks the CSI v1 gRPC API to
// the upstream external-provisioner and to the kubelet, and it registers itself with
// the kubelet over the plugin-registration socket as node-driver-registrar would.
// Nothing is simulated: kubelet, provisioner and pods see real mounts and devices.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	csi "github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

const defaultCapacity = 1 << 30

var version = "dev"

type driver struct {
	csi.UnimplementedIdentityServer
	csi.UnimplementedControllerServer
	csi.UnimplementedNodeServer

	name     string
	nodeID   string
	dataDir  string
	endpoint string
	mu       sync.Mutex // serialises volume create/delete/publish: loop setup is not atomic
}

func main() {
	d := &driver{}
	regDir := flag.String("registration-dir", "/var/lib/kubelet/plugins_registry", "kubelet plugin registration directory ('' disables registration)")
	flag.StringVar(&d.name, "drivername", "hostpath.csi.vmdiskimage.local", "CSI driver name")
	flag.StringVar(&d.nodeID, "nodeid", "", "node name reported to the kubelet")
	flag.StringVar(&d.dataDir, "data-dir", "/var/lib/vmdi-csi-hostpath", "where volumes are kept")
	flag.StringVar(&d.endpoint, "endpoint", "/var/lib/kubelet/plugins/vmdi-csi-hostpath/csi.sock", "CSI unix socket path")
	showVersion := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *showVersion {
		fmt.Println(version)
		return
	}
	if d.nodeID == "" {
		log.Fatal("--nodeid is required")
	}
	if err := os.MkdirAll(d.dataDir, 0o750); err != nil {
		log.Fatal(err)
	}

	csiSrv := grpc.NewServer(grpc.UnaryInterceptor(logCalls))
	csi.RegisterIdentityServer(csiSrv, d)
	csi.RegisterControllerServer(csiSrv, d)
	csi.RegisterNodeServer(csiSrv, d)
	go serve(csiSrv, d.endpoint)

	var regSrv *grpc.Server
	if *regDir != "" {
		regSrv = grpc.NewServer()
		registerapi.RegisterRegistrationServer(regSrv, &registrar{d: d})
		go serve(regSrv, filepath.Join(*regDir, d.name+"-reg.sock"))
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	csiSrv.Stop()
	if regSrv != nil {
		regSrv.Stop() // removes nothing by itself: the socket file goes with the listener
	}
}

func serve(s *grpc.Server, path string) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		log.Fatal(err)
	}
	_ = os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("listening on %s", path)
	if err := s.Serve(l); err != nil {
		log.Fatal(err)
	}
}

func logCalls(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	resp, err := h(ctx, req)
	if err != nil {
		log.Printf("%s: error: %v", info.FullMethod, err)
	} else if !strings.Contains(info.FullMethod, "Probe") {
		log.Printf("%s: ok", info.FullMethod)
	}
	return resp, err
}

// registrar answers the kubelet's plugin watcher, the job node-driver-registrar does.
type registrar struct{ d *driver }

func (r *registrar) GetInfo(context.Context, *registerapi.InfoRequest) (*registerapi.PluginInfo, error) {
	return &registerapi.PluginInfo{
		Type:              registerapi.CSIPlugin,
		Name:              r.d.name,
		Endpoint:          r.d.endpoint,
		SupportedVersions: []string{"1.0.0"},
	}, nil
}

func (r *registrar) NotifyRegistrationStatus(_ context.Context, s *registerapi.RegistrationStatus) (*registerapi.RegistrationStatusResponse, error) {
	if !s.PluginRegistered {
		log.Printf("kubelet refused the registration: %s", s.Error)
	} else {
		log.Printf("registered with the kubelet")
	}
	return &registerapi.RegistrationStatusResponse{}, nil
}

// Identity service.

func (d *driver) GetPluginInfo(context.Context, *csi.GetPluginInfoRequest) (*csi.GetPluginInfoResponse, error) {
	return &csi.GetPluginInfoResponse{Name: d.name, VendorVersion: version}, nil
}

func (d *driver) GetPluginCapabilities(context.Context, *csi.GetPluginCapabilitiesRequest) (*csi.GetPluginCapabilitiesResponse, error) {
	return &csi.GetPluginCapabilitiesResponse{Capabilities: []*csi.PluginCapability{{
		Type: &csi.PluginCapability_Service_{Service: &csi.PluginCapability_Service{
			Type: csi.PluginCapability_Service_CONTROLLER_SERVICE}},
	}}}, nil
}

func (d *driver) Probe(context.Context, *csi.ProbeRequest) (*csi.ProbeResponse, error) {
	return &csi.ProbeResponse{}, nil
}

// Controller service.

func (d *driver) ControllerGetCapabilities(context.Context, *csi.ControllerGetCapabilitiesRequest) (*csi.ControllerGetCapabilitiesResponse, error) {
	return &csi.ControllerGetCapabilitiesResponse{Capabilities: []*csi.ControllerServiceCapability{{
		Type: &csi.ControllerServiceCapability_Rpc{Rpc: &csi.ControllerServiceCapability_RPC{
			Type: csi.ControllerServiceCapability_RPC_CREATE_DELETE_VOLUME}},
	}}}, nil
}

func (d *driver) blockPath(id string) string { return filepath.Join(d.dataDir, id+".img") }
func (d *driver) dirPath(id string) string   { return filepath.Join(d.dataDir, id) }

func (d *driver) CreateVolume(_ context.Context, req *csi.CreateVolumeRequest) (*csi.CreateVolumeResponse, error) {
	if req.Name == "" || strings.ContainsAny(req.Name, "/.") {
		return nil, status.Errorf(codes.InvalidArgument, "bad volume name %q", req.Name)
	}
	if req.VolumeContentSource != nil {
		return nil, status.Error(codes.InvalidArgument, "volume content sources are not supported")
	}
	size := req.GetCapacityRange().GetRequiredBytes()
	if size == 0 {
		size = defaultCapacity
	}
	block := false
	for _, c := range req.VolumeCapabilities {
		if c.GetBlock() != nil {
			block = true
		}
	}
	// realCapacity (a StorageClass parameter, in bytes) makes a volume that holds less
	// than it reports, as a thin pool that ran out or a quota would: a Block volume is a
	// smaller file, a Filesystem volume a tmpfs of that size. Tests use it for full
	// targets; without it, Filesystem volumes are plain directories without a limit.
	real := size
	if v, ok := req.Parameters["realCapacity"]; ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return nil, status.Errorf(codes.InvalidArgument, "realCapacity %q is not a byte count", v)
		}
		real = n
	}
	_, limited := req.Parameters["realCapacity"]
	d.mu.Lock()
	defer d.mu.Unlock()
	id := req.Name // the provisioner passes the PV name, so retries are idempotent
	if block {
		// A sparse file: it costs disk only for what is written, like a thin LV.
		f, err := os.OpenFile(d.blockPath(id), os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
		defer f.Close()
		if err := f.Truncate(real); err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
	} else if err := os.MkdirAll(d.dirPath(id), 0o777); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	} else if err := d.limitDir(d.dirPath(id), real, limited); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	} else if err := os.Chmod(d.dirPath(id), 0o777); err != nil { // non-root pods must write
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &csi.CreateVolumeResponse{Volume: &csi.Volume{VolumeId: id, CapacityBytes: size}}, nil
}

// limitDir mounts a tmpfs of size bytes on dir when limited (once: a retried
// CreateVolume finds it mounted).
func (d *driver) limitDir(dir string, size int64, limited bool) error {
	if !limited {
		return nil
	}
	if mounted, err := isMountPoint(dir); err != nil || mounted {
		return err
	}
	return unix.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0777", size))
}

func (d *driver) DeleteVolume(_ context.Context, req *csi.DeleteVolumeRequest) (*csi.DeleteVolumeResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := detachLoops(d.blockPath(req.VolumeId)); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	if err := os.Remove(d.blockPath(req.VolumeId)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, status.Error(codes.Internal, err.Error())
	}
	if mounted, _ := isMountPoint(d.dirPath(req.VolumeId)); mounted {
		if err := unix.Unmount(d.dirPath(req.VolumeId), 0); err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
	}
	if err := os.RemoveAll(d.dirPath(req.VolumeId)); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &csi.DeleteVolumeResponse{}, nil
}

func (d *driver) ValidateVolumeCapabilities(_ context.Context, req *csi.ValidateVolumeCapabilitiesRequest) (*csi.ValidateVolumeCapabilitiesResponse, error) {
	return &csi.ValidateVolumeCapabilitiesResponse{Confirmed: &csi.ValidateVolumeCapabilitiesResponse_Confirmed{
		VolumeCapabilities: req.VolumeCapabilities}}, nil
}

// Node service.

func (d *driver) NodeGetInfo(context.Context, *csi.NodeGetInfoRequest) (*csi.NodeGetInfoResponse, error) {
	return &csi.NodeGetInfoResponse{NodeId: d.nodeID}, nil
}

func (d *driver) NodeGetCapabilities(context.Context, *csi.NodeGetCapabilitiesRequest) (*csi.NodeGetCapabilitiesResponse, error) {
	return &csi.NodeGetCapabilitiesResponse{}, nil
}

func (d *driver) NodePublishVolume(_ context.Context, req *csi.NodePublishVolumeRequest) (*csi.NodePublishVolumeResponse, error) {
	target := req.TargetPath
	if target == "" || req.VolumeId == "" || req.VolumeCapability == nil {
		return nil, status.Error(codes.InvalidArgument, "volume id, target path and capability are required")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if mounted, err := isMountPoint(target); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	} else if mounted {
		return &csi.NodePublishVolumeResponse{}, nil
	}

	var source string
	if req.VolumeCapability.GetBlock() != nil {
		dev, err := attachLoop(d.blockPath(req.VolumeId))
		if err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
		// The kubelet expects a file at the target path with the device bind-mounted on it.
		if err := os.MkdirAll(filepath.Dir(target), 0o750); err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
		f, err := os.OpenFile(target, os.O_CREATE, 0o660)
		if err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
		f.Close()
		source = dev
	} else {
		if _, err := os.Stat(d.dirPath(req.VolumeId)); err != nil {
			return nil, status.Errorf(codes.NotFound, "volume %s: %v", req.VolumeId, err)
		}
		if err := os.MkdirAll(target, 0o750); err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
		source = d.dirPath(req.VolumeId)
	}
	if err := unix.Mount(source, target, "", unix.MS_BIND, ""); err != nil {
		return nil, status.Errorf(codes.Internal, "bind mount %s on %s: %v", source, target, err)
	}
	if req.Readonly {
		if err := unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
			_ = unix.Unmount(target, 0)
			return nil, status.Errorf(codes.Internal, "remount read-only %s: %v", target, err)
		}
	}
	return &csi.NodePublishVolumeResponse{}, nil
}

func (d *driver) NodeUnpublishVolume(_ context.Context, req *csi.NodeUnpublishVolumeRequest) (*csi.NodeUnpublishVolumeResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	target := req.TargetPath
	for {
		mounted, err := isMountPoint(target)
		if err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
		if !mounted {
			break
		}
		if err := unix.Unmount(target, 0); err != nil {
			return nil, status.Errorf(codes.Internal, "unmount %s: %v", target, err)
		}
	}
	if err := os.Remove(target); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, status.Error(codes.Internal, err.Error())
	}
	// A block volume is published once on this single node, so its loop device can go.
	if err := detachLoops(d.blockPath(req.VolumeId)); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &csi.NodeUnpublishVolumeResponse{}, nil
}

// isMountPoint reports whether path is the mount point of some entry in our mountinfo.
func isMountPoint(path string) (bool, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) > 4 && unescapeMount(fields[4]) == path {
			return true, nil
		}
	}
	return false, nil
}

func unescapeMount(s string) string {
	return strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`).Replace(s)
}

// attachLoop returns the loop device backed by file, attaching one if there is none.
func attachLoop(file string) (string, error) {
	devs, err := loopsFor(file)
	if err != nil {
		return "", err
	}
	if len(devs) > 0 {
		return devs[0], nil
	}
	out, err := exec.Command("losetup", "--find", "--show", "--direct-io=on", file).CombinedOutput()
	if err != nil {
		// Direct I/O needs the backing filesystem's support; fall back without it.
		out, err = exec.Command("losetup", "--find", "--show", file).CombinedOutput()
	}
	if err != nil {
		return "", fmt.Errorf("losetup %s: %v: %s", file, err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

func loopsFor(file string) ([]string, error) {
	if _, err := os.Stat(file); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	out, err := exec.Command("losetup", "--associated", file, "--noheadings", "--output", "NAME").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("losetup -j %s: %v: %s", file, err, out)
	}
	return strings.Fields(string(out)), nil
}

func detachLoops(file string) error {
	devs, err := loopsFor(file)
	if err != nil {
		return err
	}
	for _, dev := range devs {
		if out, err := exec.Command("losetup", "--detach", dev).CombinedOutput(); err != nil {
			return fmt.Errorf("losetup -d %s: %v: %s", dev, err, out)
		}
	}
	return nil
}
