using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net;
using System.Text;
using Streams.Common.Hashing;

namespace Streams.Tier2.Tests.S3;

/// <summary>
/// Checks upload bodies against their <c>x-amz-checksum-crc32c</c> header on the way to the server, as S3 does, and
/// answers a mismatch as S3 does (400 BadDigest) without forwarding it. s3rver ignores checksum headers (it stores
/// whatever arrives; see <c>s3rver_stores_a_damaged_body_whatever_its_checksum_header_says</c>), so without this
/// stand-in no test against it could see a damaged upload refused.
/// </summary>
internal sealed class S3ChecksumGate(HttpMessageHandler inner) : DelegatingHandler(inner)
{
    public const string Header = "x-amz-checksum-crc32c";

    /// <summary>Bodies checked against their header, as "METHOD path".</summary>
    public ConcurrentQueue<string> Checked { get; } = new();

    /// <summary>Upload bodies that came without a CRC-32C header.</summary>
    public ConcurrentQueue<string> Unchecked { get; } = new();

    /// <summary>CRC-32C headers of requests without a body to check (CompleteMultipartUpload's whole-object checksum).</summary>
    public ConcurrentQueue<string> BodilessChecksums { get; } = new();

    public static string Format(uint crc)
    {
        Span<byte> bytes = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, crc);
        return Convert.ToBase64String(bytes);
    }

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var what = $"{request.Method} {request.RequestUri?.PathAndQuery}";
        var header = HeaderOf(request);
        if (request.Method == HttpMethod.Put && request.Content is not null)
        {
            var body = await request.Content.ReadAsByteArrayAsync(cancellationToken); // buffered: still sent below
            if (header is null)
            {
                Unchecked.Enqueue(what);
            }
            else if (header != Format(Crc32C.Compute(body)))
            {
                return BadDigest();
            }
            else
            {
                Checked.Enqueue(what);
            }
        }
        else if (header is not null)
        {
            BodilessChecksums.Enqueue(header);
        }

        return await base.SendAsync(request, cancellationToken);
    }

    private static string? HeaderOf(HttpRequestMessage request) =>
        request.Headers.TryGetValues(Header, out var values) || (request.Content?.Headers.TryGetValues(Header, out values) ?? false)
            ? values!.Single()
            : null;

    private static HttpResponseMessage BadDigest() => new(HttpStatusCode.BadRequest)
    {
        Content = new StringContent(
            """<?xml version="1.0" encoding="UTF-8"?><Error><Code>BadDigest</Code><Message>The CRC32C you specified did not match the calculated checksum.</Message><RequestId>checksum-gate</RequestId></Error>""",
            Encoding.UTF8,
            "application/xml"),
    };
}
