using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Grpc.Core;
using Streams.Common.Grpc;
using Streams.Interop;
using Streams.Testing;

namespace Streams.Common.Server.Tests.Grpc;

/// <summary>gRPC over TLS (HTTP/2 negotiated by ALPN), with a self-signed certificate the client is told to trust.</summary>
public sealed class GrpcTlsTests
{
    private static X509Certificate2 SelfSigned()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=localhost", key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName("localhost");
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddHours(1));
        return X509CertificateLoader.LoadPkcs12(certificate.Export(X509ContentType.Pkcs12), null);
    }

    [Fact]
    public async Task Calls_work_over_tls_when_the_certificate_is_trusted()
    {
        using var certificate = SelfSigned();
        await using var host = await GrpcTestHost.StartAsync(certificate: certificate);
        using var channel = GrpcChannels.Create(host.Uri, new GrpcChannelSettings
        {
            ServerCertificateValidation = (_, presented, _, _) => presented is not null && presented.GetCertHashString() == certificate.GetCertHashString(),
        });
        Assert.Equal("secure", (await new Echo.EchoClient(channel).UnaryAsync(new EchoRequest { Text = "secure" })).Text);
    }

    [Fact]
    public async Task An_untrusted_certificate_is_refused()
    {
        using var certificate = SelfSigned();
        await using var host = await GrpcTestHost.StartAsync(certificate: certificate);
        using var channel = GrpcChannels.Create(host.Uri);
        var error = await Assert.ThrowsAsync<RpcException>(async () => await new Echo.EchoClient(channel).UnaryAsync(new EchoRequest()));
        // Grpc.Net.Client reports a failed TLS handshake as INTERNAL, naming the SSL failure.
        Assert.Equal(StatusCode.Internal, error.StatusCode);
        Assert.Contains("SSL", error.Status.Detail, StringComparison.Ordinal);
    }
}
