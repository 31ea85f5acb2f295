using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Streams.Common.Grpc;
using Streams.Common.Grpc.Client;
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
        using var channel = GrpcChannel.ForAddress(host.Uri, new GrpcChannelOptions
        {
            ServerCertificateValidation = (_, presented, _, _) => presented is not null && presented.GetCertHashString() == certificate.GetCertHashString(),
        });
        Assert.Equal("secure", (await channel.UnaryAsync(EchoApi.Unary, new EchoRequest { Text = "secure" })).Text);
    }

    [Fact]
    public async Task An_untrusted_certificate_is_refused()
    {
        using var certificate = SelfSigned();
        await using var host = await GrpcTestHost.StartAsync(certificate: certificate);
        using var channel = GrpcChannel.ForAddress(host.Uri);
        var error = await Assert.ThrowsAsync<RpcException>(() => channel.UnaryAsync(EchoApi.Unary, new EchoRequest()));
        Assert.Equal(StatusCode.Unavailable, error.StatusCode);
    }
}
