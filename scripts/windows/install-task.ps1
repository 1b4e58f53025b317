<#
.SYNOPSIS
  Register Daiban with the Windows Task Scheduler on a village PC (most run
  Windows): `daiban sync --watch` starts when the agent logs on and is
  restarted if it stops; or, with -Serve, `daiban serve` for a district or
  town that serves its children, with the nightly forward to its parent.

.EXAMPLE
  powershell -ExecutionPolicy Bypass -File scripts\windows\install-task.ps1 -DaibanHome "D:\daiban"
.EXAMPLE
  powershell -ExecutionPolicy Bypass -File scripts\windows\install-task.ps1 -DaibanHome "D:\daiban" -Serve
.EXAMPLE
  powershell -File scripts\windows\install-task.ps1 -Remove
#>
param(
    [string]$DaibanHome = $env:DAIBAN_HOME,
    [string]$Daiban = "",
    [switch]$Serve,
    [string]$ServeHost = "0.0.0.0",
    [int]$Port = 8720,
    [string]$Window = "01:00-05:00",
    [string]$TaskName = "",
    [switch]$Remove
)
$ErrorActionPreference = "Stop"
if (-not $TaskName) { $TaskName = $(if ($Serve) { "Daiban serve" } else { "Daiban sync" }) }

if ($Remove) {
    Unregister-ScheduledTask -TaskName $TaskName -Confirm:$false
    Write-Host "Removed the task '$TaskName'."
    exit 0
}
if (-not $DaibanHome) { throw "Give the node home with -DaibanHome D:\daiban (or set DAIBAN_HOME)." }
if (-not $Daiban) {
    $found = Get-Command daiban.exe -ErrorAction SilentlyContinue
    if (-not $found) { throw "daiban.exe is not on PATH; give its full path with -Daiban." }
    $Daiban = $found.Source
}

# The command lines; tests/test_ops_templates.py checks them against the CLI.
$WatchArgs = @('sync', '--watch')
$ServeArgs = @('serve', '--host', $ServeHost, '--port', "$Port", '--forward-window', $Window)
$CommandArgs = $(if ($Serve) { $ServeArgs } else { $WatchArgs })
$Arguments = "--home `"$DaibanHome`" " + ($CommandArgs -join ' ')

$action = New-ScheduledTaskAction -Execute $Daiban -Argument $Arguments -WorkingDirectory $DaibanHome
if ($Serve) {
    # A server runs from boot, whoever is logged on.
    $trigger = New-ScheduledTaskTrigger -AtStartup
    $principal = New-ScheduledTaskPrincipal -UserId "SYSTEM" -LogonType ServiceAccount -RunLevel Limited
} else {
    # The agent's PC: from logon, as the agent, so the node home is theirs.
    $trigger = New-ScheduledTaskTrigger -AtLogOn -User $env:USERNAME
    $principal = New-ScheduledTaskPrincipal -UserId $env:USERNAME -LogonType Interactive -RunLevel Limited
}
# No time limit; restart every minute if it stops (up to 999 times); run on
# battery too: village PCs are often laptops.
$settings = New-ScheduledTaskSettingsSet -ExecutionTimeLimit ([TimeSpan]::Zero) `
    -RestartInterval (New-TimeSpan -Minutes 1) -RestartCount 999 `
    -AllowStartIfOnBatteries -DontStopIfGoingOnBatteries -StartWhenAvailable `
    -MultipleInstances IgnoreNew
Register-ScheduledTask -TaskName $TaskName -Action $action -Trigger $trigger -Principal $principal `
    -Settings $settings -Description "Daiban: $($CommandArgs -join ' ')" -Force | Out-Null
Start-ScheduledTask -TaskName $TaskName
Write-Host "Registered and started '$TaskName': $Daiban $Arguments"
Write-Host "Logs: $DaibanHome\logs\"
