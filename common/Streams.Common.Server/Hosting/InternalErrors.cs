using System.Diagnostics;
using Microsoft.Extensions.Logging;

namespace Streams.Common.Server.Hosting;

/// <summary>
/// What a client is told about a failure the server did not expect, on either carrier: a correlation id and a generic
/// message, never the exception's own message (it may name internals: paths, hosts, types). The exception goes to
/// the server log under the same id, so an operator finds it from what the client reports.
/// </summary>
public static class InternalErrors
{
    /// <summary>Logs <paramref name="error"/> at error level with a new correlation id; returns the message for the client.</summary>
    /// <param name="logger">The server log.</param>
    /// <param name="error">What was thrown.</param>
    /// <param name="what">What failed, for the log ("Call /x.Y/Z from peer", "Read of segment s").</param>
    public static string Report(ILogger logger, Exception error, string what)
    {
        var id = Activity.Current?.TraceId.ToHexString() ?? Guid.NewGuid().ToString("N");
        logger.LogError(error, "{What} failed (error id {ErrorId}).", what, id);
        return Message(id);
    }

    /// <summary>The message a client sees for the failure logged under <paramref name="id"/>.</summary>
    public static string Message(string id) => $"Internal error {id}; the server's log has the details.";
}
