# Install the kubeupgrade agent on a Windows worker as a service, with NSSM (https://nssm.cc),
# the service wrapper kubeadm Windows nodes already use for the kubelet. Run as Administrator:
#
#   .\install-agent.ps1 -Node win-worker-1
#
# Before: Python 3.9+ with kubeupgrade installed (`pip install kubeupgrade`: the agent alone), NSSM, the
# operator's public key in C:\ProgramData\kubeupgrade\trusted\, and the settings file below.
# The broker URL (with its password) lives only in that file, readable by SYSTEM and
# Administrators, and in the service's registry key: never on a command line.
param(
    [Parameter(Mandatory = $true)][string]$Node,
    [string]$Python = "C:\Program Files\Python311\python.exe",  # 3.9 or newer
    [string]$Nssm = "C:\k\nssm.exe",
    # KUBEUPGRADE_BROKER=rediss://..., and KUBEUPGRADE_MESSAGE_KEY / _CERT / _TRUST naming the
    # agent's files of `kubeupgrade keys messages` (e.g. under C:\ProgramData\kubeupgrade\messages)
    [string]$Settings = "C:\ProgramData\kubeupgrade\agent.env",
    [string]$Binaries = "C:\k"  # where kubeadm.exe and kubelet.exe live
)
$ErrorActionPreference = 'Stop'
$Service = 'kubeupgrade-agent'
$Data = Split-Path $Settings

if (-not (Test-Path $Settings)) { throw "$Settings is missing: write KUBEUPGRADE_BROKER=... into it first" }
& icacls.exe $Settings /inheritance:r /grant:r 'SYSTEM:(R)' 'Administrators:(F)' | Out-Null
$environment = @(Get-Content $Settings | Where-Object { $_ -match '^[A-Z_]+=.+' })
$environment += "KUBEUPGRADE_WINDOWS_DIR=$($Binaries.Substring(2).Replace('\', '/'))"

if (Get-Service $Service -ErrorAction SilentlyContinue) {
    & $Nssm stop $Service | Out-Null  # re-running the script updates the service in place
} else {
    & $Nssm install $Service $Python | Out-Null
}
& $Nssm set $Service Application $Python | Out-Null
& $Nssm set $Service AppParameters "-m workers --node $Node --os windows --host-root C:\ --trusted-keys $Data\trusted" | Out-Null
& $Nssm set $Service AppEnvironmentExtra $environment | Out-Null
& $Nssm set $Service Start SERVICE_AUTO_START | Out-Null
& $Nssm set $Service AppExit Default Restart | Out-Null
# Ctrl-C first and a long wait: Celery's warm shutdown lets a running step finish.
& $Nssm set $Service AppStopMethodConsole 1200000 | Out-Null
& $Nssm set $Service AppStdout "$Data\agent.log" | Out-Null
& $Nssm set $Service AppStderr "$Data\agent.log" | Out-Null
& $Nssm start $Service | Out-Null
Get-Service $Service
