using Amazon.Runtime;

namespace Streams.Tier2.Tests.S3;

/// <summary>Gives the AWS SDK an HTTP client whose pipeline ends in the given handlers (outermost first).</summary>
internal sealed class HandlerHttpClientFactory(Func<HttpMessageHandler, HttpMessageHandler> pipeline) : HttpClientFactory
{
    public override HttpClient CreateHttpClient(IClientConfig clientConfig) =>
        new(pipeline(new SocketsHttpHandler { AllowAutoRedirect = false }))
        {
            Timeout = clientConfig.Timeout ?? TimeSpan.FromSeconds(30),
        };
}
