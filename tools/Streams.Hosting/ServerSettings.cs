using System.Net;

namespace Streams.Hosting;

/// <summary>Network endpoints of a server process (configuration section "Server").</summary>
public sealed record ServerSettings
{
    /// <summary>Address to listen on. 127.0.0.1 by default: expose the store deliberately (0.0.0.0), not by accident.</summary>
    public string Host { get; init; } = "127.0.0.1";

    /// <summary>Address clients are told to use for this server; defaults to <see cref="Host"/> (or 127.0.0.1 for 0.0.0.0).</summary>
    public string? AdvertisedHost { get; init; }

    /// <summary>gRPC (HTTP/2, cleartext): every API.</summary>
    public int GrpcPort { get; init; } = 9090;

    /// <summary>The raw framed data carrier: appends and reads.</summary>
    public int DataPort { get; init; } = 9091;

    /// <summary>HTTP/1.1: /metrics (Prometheus), /healthz (liveness) and /readyz (readiness).</summary>
    public int MetricsPort { get; init; } = 9092;

    /// <summary>
    /// A PKCS#12 (.pfx) or PEM certificate for TLS on the gRPC port. Unset: cleartext HTTP/2 (prior knowledge).
    /// With TLS the port speaks HTTP/2 negotiated by ALPN, and clients use https:// addresses.
    /// </summary>
    public string? TlsCertificate { get; init; }

    /// <summary>The PEM private key file for <see cref="TlsCertificate"/>, or the .pfx password.</summary>
    public string? TlsKey { get; init; }

    public IPAddress BindAddress => IPAddress.Parse(Host);

    public string Advertised => AdvertisedHost ?? (Host is "0.0.0.0" or "::" ? "127.0.0.1" : Host);

    public string GrpcUri => $"{(TlsCertificate is null ? "http" : "https")}://{Advertised}:{GrpcPort}";

    /// <summary>Loads the TLS certificate, or null for cleartext. Throws with the file name if it cannot be read.</summary>
    public System.Security.Cryptography.X509Certificates.X509Certificate2? LoadCertificate()
    {
        if (string.IsNullOrEmpty(TlsCertificate))
        {
            return null;
        }

        try
        {
            return TlsCertificate.EndsWith(".pfx", StringComparison.OrdinalIgnoreCase) || TlsCertificate.EndsWith(".p12", StringComparison.OrdinalIgnoreCase)
                ? System.Security.Cryptography.X509Certificates.X509CertificateLoader.LoadPkcs12FromFile(TlsCertificate, TlsKey)
                : System.Security.Cryptography.X509Certificates.X509Certificate2.CreateFromPemFile(TlsCertificate, TlsKey);
        }
        catch (Exception e) when (e is IOException or System.Security.Cryptography.CryptographicException or UnauthorizedAccessException)
        {
            throw new ArgumentException($"Server:TlsCertificate '{TlsCertificate}' could not be loaded: {e.Message}", e);
        }
    }

    public void Validate()
    {
        if (!IPAddress.TryParse(Host, out _))
        {
            throw new ArgumentException($"Server:Host must be an IP address (is '{Host}').");
        }

        foreach (var (name, port) in new[] { ("GrpcPort", GrpcPort), ("DataPort", DataPort), ("MetricsPort", MetricsPort) })
        {
            if (port is < 1 or > 65535)
            {
                throw new ArgumentException($"Server:{name} must be a TCP port between 1 and 65535 (is {port}).");
            }
        }

        if (new[] { GrpcPort, DataPort, MetricsPort }.Distinct().Count() != 3)
        {
            throw new ArgumentException($"Server ports must differ (gRPC {GrpcPort}, data {DataPort}, metrics {MetricsPort}).");
        }
    }
}
