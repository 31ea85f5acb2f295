namespace Streams.Tier2.Tests.S3;

/// <summary>
/// Flips one byte in the middle of every upload body after the SDK has set its headers (the checksum among them):
/// what a faulty NIC, proxy or memory on the way would do.
/// </summary>
internal sealed class BodyCorruptingHandler(HttpMessageHandler inner) : DelegatingHandler(inner)
{
    public int Corrupted { get; private set; }

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        if (request.Method == HttpMethod.Put && request.Content is { } content)
        {
            var body = await content.ReadAsByteArrayAsync(cancellationToken);
            if (body.Length > 0)
            {
                body[body.Length / 2] ^= 0x01;
                var damaged = new ByteArrayContent(body);
                foreach (var (name, values) in content.Headers)
                {
                    damaged.Headers.TryAddWithoutValidation(name, values);
                }

                request.Content = damaged;
                Corrupted++;
            }
        }

        return await base.SendAsync(request, cancellationToken);
    }
}
