@echo off
rem Double-click to run the trading dashboard on Windows.
rem First run: creates a virtual environment in .venv and installs the requirements.
rem 双击运行：首次运行会创建 .venv 虚拟环境并安装依赖，然后打开浏览器。
rem Arguments go to python -m web.app (e.g. start.bat --port 5050); launcher.py does the checks.
setlocal
cd /d "%~dp0"
chcp 65001 >nul

where py >nul 2>nul
if %errorlevel%==0 (set "PYTHON=py -3") else (set "PYTHON=python")

%PYTHON% launcher.py check-python
if errorlevel 1 (
  echo [error] Python 3.11+ was not found or is too old. Install it from python.org and tick "Add to PATH".
  echo [错误] 未找到 Python 3.11+ 或版本过旧，请从 python.org 安装并勾选 "Add to PATH"。
  pause
  exit /b 1
)

rem A .venv whose python is missing or does not run (moved folder, removed Python): rebuild it.
if exist ".venv" (
  ".venv\Scripts\python.exe" launcher.py check-python >nul 2>nul
  if errorlevel 1 (
    echo [setup] .venv is broken or too old - rebuilding it ...
    echo [setup] .venv 已损坏或版本过旧，正在重建 ...
    rmdir /s /q ".venv"
  )
)

if not exist ".venv\Scripts\python.exe" (
  echo [setup] Creating virtual environment .venv ...
  %PYTHON% -m venv .venv
  if errorlevel 1 (
    echo [error] could not create .venv with %PYTHON% - see the message above.
    echo [错误] 无法创建 .venv 虚拟环境，请查看上面的信息。
    pause
    exit /b 1
  )
)

echo [setup] Installing requirements ...
rem pip's own output is kept in pip.log; on failure its last lines say what it failed on.
".venv\Scripts\python.exe" -m pip install --disable-pip-version-check -r requirements.txt > pip.log 2>&1
if errorlevel 1 (
  echo [error] pip install failed. Its last lines ^(full log: pip.log^):
  echo [错误] 依赖安装失败，pip 的最后输出如下（完整日志：pip.log）：
  powershell -NoProfile -Command "Get-Content -Tail 15 pip.log"
  pause
  exit /b 1
)

if not exist ".env" if exist ".env.example" copy ".env.example" ".env" >nul

rem Open the browser once the server answers, at the port from the arguments or .env.
start "" /b ".venv\Scripts\python.exe" launcher.py open-when-up %*
".venv\Scripts\python.exe" -m web.app %*
if errorlevel 1 pause
endlocal
