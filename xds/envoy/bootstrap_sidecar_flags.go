package envoy

import "flag"

// The flags with which cmd/sluice-init learns where to write the xDS client's SDS files
// (XDSClientSecretFiles); the injector writes them with XDSClientTLS.Args.
const (
	FlagXDSSDSDir     = "xds-sds-dir"
	FlagXDSCert       = "xds-cert"
	FlagXDSKey        = "xds-key"
	FlagXDSCA         = "xds-ca"
	FlagXDSServerName = "xds-server-name"
)

// Args are the flags that make BindXDSClientFlags give t.
func (t XDSClientTLS) Args() []string {
	return []string{
		"--" + FlagXDSSDSDir + "=" + t.SDSDir,
		"--" + FlagXDSCert + "=" + t.CertFile,
		"--" + FlagXDSKey + "=" + t.KeyFile,
		"--" + FlagXDSCA + "=" + t.CAFile,
		"--" + FlagXDSServerName + "=" + t.ServerName,
	}
}

// BindXDSClientFlags registers the flags of XDSClientTLS.Args on fs; the returned value is filled
// in when fs is parsed. An empty SDSDir means no files are asked for.
func BindXDSClientFlags(fs *flag.FlagSet) *XDSClientTLS {
	t := &XDSClientTLS{}
	fs.StringVar(&t.SDSDir, FlagXDSSDSDir, "", "Directory to write the sidecar's SDS files for its xDS client certificate into; empty writes none.")
	fs.StringVar(&t.CertFile, FlagXDSCert, "", "The workload certificate file the SDS secret names.")
	fs.StringVar(&t.KeyFile, FlagXDSKey, "", "The workload key file the SDS secret names.")
	fs.StringVar(&t.CAFile, FlagXDSCA, "", "The CA file that verifies the xDS server.")
	fs.StringVar(&t.ServerName, FlagXDSServerName, "", "The DNS SAN the xDS server's certificate must carry.")
	return t
}
