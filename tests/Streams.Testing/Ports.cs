using System.Net;
using System.Net.Sockets;

namespace Streams.Testing;

/// <summary>Free loopback ports for servers started by tests.</summary>
public static class Ports
{
    private static readonly object Lock = new();
    private static readonly HashSet<int> Handed = [];

    /// <summary>A port that was free a moment ago and that this process has not handed out before.</summary>
    public static int Free()
    {
        lock (Lock)
        {
            while (true)
            {
                using var listener = new TcpListener(IPAddress.Loopback, 0);
                listener.Start();
                var port = ((IPEndPoint)listener.LocalEndpoint).Port;
                if (Handed.Add(port))
                {
                    return port;
                }
            }
        }
    }
}
